"""Rebuilding trained fold models for inference: from a run directory or an exported bundle."""
