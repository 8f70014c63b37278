"""Metrics and their uncertainty: pure numpy / scikit-learn, importing nothing from mitobench."""
