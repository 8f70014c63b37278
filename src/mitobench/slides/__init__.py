"""Classifying a detector's mitotic figures on whole-slide images (the second stage)."""
