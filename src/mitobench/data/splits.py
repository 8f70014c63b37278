"""The paper's 5-fold slide-grouped cross-validation over the AMi-Br training split."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from mitobench.data.dataset import Dataset

N_FOLDS = 5
SEED = 42


def assign_folds(dataset: Dataset, n_splits: int = N_FOLDS, seed: int = SEED) -> np.ndarray:
    """Fold number (0-based) of each sample, exactly as the reference code splits.

    The reference calls `StratifiedGroupKFold(5, shuffle=True, random_state=42).split(images,
    labels, slides)` over the rows of amibr_train_split.csv in file order with Atypical=0,
    Normal=1; we pass the same coding so the folds are identical fold for fold.
    """
    if dataset.frame["group"].isna().any():
        raise ValueError(f"{dataset.key}: grouped folds need a group (slide) for every sample")
    reference_labels = 1 - dataset.labels  # reference coding: Atypical=0, Normal=1
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = np.full(len(dataset), -1, dtype=np.int64)
    for k, (_, val_idx) in enumerate(
        splitter.split(np.arange(len(dataset)), reference_labels, dataset.groups)
    ):
        folds[val_idx] = k
    return folds


def fold_split(folds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of fold `k`."""
    return np.flatnonzero(folds != k), np.flatnonzero(folds == k)
