"""The paper's 5-fold slide-grouped cross-validation over the AMi-Br training split.

The reference scripts call `StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=42)`
and ran on scikit-learn ≤ 1.7. scikit-learn 1.8 changed what that splitter returns with
`shuffle=True` (it used to shuffle the per-group class counts without the group ids, so a
group's counts steered where *another* group went). The `paper` split re-implements the ≤ 1.7
algorithm so every scikit-learn release gives the paper's folds; `sklearn` is whatever the
installed release returns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from mitobench import CLASS_NAMES
from mitobench.data.dataset import Dataset
from mitobench.errors import DataError

N_FOLDS = 5
SEED = 42

PAPER_FOLDS_SHA256 = "8f6d71cd809f7deabcb1464f4743a75966e0d2d57eb2156007ef2472b53d1ea5"
"""`folds_fingerprint` of the paper's folds of AMi-Br's training split (pinned by a test against
the reference fold table, computed with scikit-learn 1.7.2)."""

SplitName = Literal["paper", "sklearn"]
SPLITS: tuple[str, ...] = ("paper", "sklearn")
"""`paper`: scikit-learn ≤ 1.7's StratifiedGroupKFold, on every release (the default);
`sklearn`: the installed scikit-learn's StratifiedGroupKFold."""


def paper_group_folds(
    labels: Sequence[int] | np.ndarray, groups: Sequence[object] | np.ndarray, n_splits: int, seed: int
) -> np.ndarray:
    """Fold of each sample as scikit-learn ≤ 1.7's `StratifiedGroupKFold(shuffle=True)` assigns it.

    Groups are visited from the most to the least class-skewed (a stable sort of a shuffled
    table) and each goes to the fold whose per-class share stays most even, ties to the
    smallest fold. As in those releases, the shuffle permutes the rows of the per-group
    class-count table but not the group ids that rows are later filed under.
    """
    labels = np.asarray(labels)
    _, y_inv, y_cnt = np.unique(labels, return_inverse=True, return_counts=True)
    _, g_inv, g_cnt = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    counts = np.zeros((len(g_cnt), len(y_cnt)))
    np.add.at(counts, (g_inv, y_inv), 1)
    np.random.RandomState(seed).shuffle(counts)
    per_fold = np.zeros((n_splits, len(y_cnt)))
    fold_of_group = np.empty(len(g_cnt), dtype=np.int64)
    for row in np.argsort(-np.std(counts, axis=1), kind="mergesort"):
        best = _most_even_fold(per_fold, y_cnt, counts[row])
        per_fold[best] += counts[row]
        fold_of_group[row] = best  # the row index filed as a group id: the ≤ 1.7 behaviour
    return fold_of_group[g_inv]


def _most_even_fold(per_fold: np.ndarray, y_cnt: np.ndarray, add: np.ndarray) -> int:
    best, best_eval, best_size = 0, np.inf, np.inf
    for i in range(len(per_fold)):
        trial = per_fold.copy()
        trial[i] += add
        score = float(np.mean(np.std(trial / y_cnt.reshape(1, -1), axis=0)))
        size = float(per_fold[i].sum())
        if score < best_eval or (np.isclose(score, best_eval) and size < best_size):
            best, best_eval, best_size = i, score, size
    return best


def _installed_group_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> np.ndarray:
    from sklearn.model_selection import StratifiedGroupKFold  # deferred: `mitobench --help` stays quick

    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = np.full(len(labels), -1, dtype=np.int64)
    for k, (_, val_idx) in enumerate(splitter.split(np.arange(len(labels)), labels, groups)):
        folds[val_idx] = k
    return folds


def assign_folds(
    dataset: Dataset, n_splits: int = N_FOLDS, seed: int = SEED, split: SplitName = "paper"
) -> np.ndarray:
    """Fold number (0-based) of each sample; fold k is the reference's k-th split (`fold_{k+1}`).

    Labels are passed in the reference coding (Atypical=0, Normal=1), in the dataset's row
    order (for AMi-Br: the file order of amibr_train_split.csv), grouped by slide.
    """
    if dataset.frame["group"].isna().any():
        raise ValueError(f"{dataset.key}: grouped folds need a group (slide) for every sample")
    reference_labels = 1 - dataset.labels
    if split == "paper":
        return paper_group_folds(reference_labels, dataset.groups, n_splits, seed)
    if split == "sklearn":
        return _installed_group_folds(reference_labels, dataset.groups, n_splits, seed)
    raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")


def training_folds(
    dataset: Dataset, n_splits: int = N_FOLDS, seed: int = SEED, split: SplitName = "paper"
) -> tuple[np.ndarray, str]:
    """(fold of each sample, how they were made) for any labelled training set.

    A `fold` column is the user's own split; else folds are stratified by label and grouped by
    `group` (slide) when every sample has one, else stratified only.
    """
    frame = dataset.frame
    if "fold" in frame.columns:
        folds = pd.to_numeric(frame["fold"], errors="coerce")
        if folds.isna().any() or (folds < 0).any() or (folds % 1 != 0).any():
            raise DataError(
                f"{dataset.key}: the fold column must hold a whole number >= 0 on every row",
                "fix the fold column, or drop it to let mitobench make stratified folds",
            )
        return folds.to_numpy(dtype=np.int64), "column"
    groups = frame["group"]
    if groups.notna().all():
        _check_enough(dataset, groups.to_numpy(), n_splits, "slides (groups)")
        return assign_folds(dataset, n_splits, seed, split), split
    if groups.notna().any():
        raise DataError(
            f"{dataset.key}: {int(groups.isna().sum())} of {len(frame)} samples have no group",
            "give every row a group (slide), or none to split by figure",
        )
    _check_enough(dataset, np.arange(len(frame)), n_splits, "figures")
    from sklearn.model_selection import StratifiedKFold

    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds_ = np.empty(len(frame), dtype=np.int64)
    for k, (_, val_idx) in enumerate(splitter.split(np.zeros(len(frame)), dataset.labels)):
        folds_[val_idx] = k
    return folds_, "stratified"


def _check_enough(dataset: Dataset, units: np.ndarray, n_splits: int, what: str) -> None:
    """Every class must reach every fold: refuse a class with fewer groups than folds."""
    for label, name in CLASS_NAMES.items():
        name = name.lower()
        n = len(set(units[dataset.labels == label]))
        if n < n_splits:
            raise DataError(
                f"{dataset.key}: the {name} class has {n} {what}, fewer than the {n_splits} folds",
                "add data, or give the CSV a `fold` column with your own split",
            )


def folds_fingerprint(ids: Sequence[str], folds: np.ndarray) -> str:
    """sha256 of the (id, fold) pairs: two runs trained on the same folds share it."""
    text = "\n".join(f"{i}\t{int(f)}" for i, f in zip(ids, folds, strict=True))
    return hashlib.sha256(text.encode()).hexdigest()


def split_record(dataset: Dataset, folds: np.ndarray, split: str) -> dict[str, str]:
    """What a run stores about its folds: the split's name, its hash, the scikit-learn in use."""
    import sklearn

    return {"split": split, "sha256": folds_fingerprint(dataset.ids, folds), "sklearn": sklearn.__version__}


def fold_split(folds: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, validation indices) of fold `k`."""
    return np.flatnonzero(folds != k), np.flatnonzero(folds == k)


def fold_counts(dataset: Dataset, folds: np.ndarray) -> list[dict[str, int]]:
    """Per fold: figures, atypical figures and slides (what `mitobench data folds` reports)."""
    rows = []
    for k in np.unique(folds):
        m = folds == k
        rows.append(
            {
                "fold": int(k),
                "figures": int(m.sum()),
                "atypical": int(dataset.labels[m].sum()),
                "slides": len(set(dataset.groups[m])),
            }
        )
    return rows
