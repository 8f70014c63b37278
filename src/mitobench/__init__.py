"""mitobench: benchmark models on atypical vs normal mitotic figure classification."""

__version__ = "0.1.0"

ATYPICAL = 1
"""Atypical is the positive class everywhere in mitobench."""
NORMAL = 0
CLASS_NAMES = {ATYPICAL: "Atypical", NORMAL: "Normal"}
"""The one place the classes are named: upstream folder names, prediction tables, slide outputs;
`name.lower()` in prose and in the MIDOG output."""
