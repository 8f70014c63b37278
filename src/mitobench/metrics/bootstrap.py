"""Bootstrap 95% confidence intervals for the fold-mean of a metric on one test set.

Each resample draws figures with replacement (or whole slides, where slides are known, since
figures of one slide are not independent) and recomputes every fold model's metric on the
same resample; the interval is taken over the resampled fold means.
"""

from __future__ import annotations

import numpy as np

from mitobench.metrics.binary import auroc, balanced_accuracy


def bootstrap_ci(
    labels: np.ndarray,
    fold_probs: np.ndarray,
    thresholds: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of the fold-mean balanced accuracy and AUROC.

    `fold_probs` is (n_folds, n_samples); `thresholds` one per fold.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    preds = fold_probs >= thresholds[:, None]
    if groups is not None:
        uniq, inverse = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    bacc, auc = [], []
    for _ in range(n_boot):
        if groups is not None:
            picked = rng.integers(0, len(members), len(members))
            idx = np.concatenate([members[g] for g in picked])
        else:
            idx = rng.integers(0, n, n)
        y = labels[idx]
        if len(np.unique(y)) < 2:  # a resample of one class: neither metric exists
            continue
        bacc.append(np.mean([balanced_accuracy(y, p[idx]) for p in preds]))
        auc.append(np.mean([auroc(y, p[idx]) for p in fold_probs]))
    if not bacc:  # one class in the whole set
        return {"balanced_accuracy": (np.nan, np.nan), "auroc": (np.nan, np.nan)}
    q = (2.5, 97.5)
    return {
        "balanced_accuracy": tuple(float(v) for v in np.percentile(bacc, q)),  # type: ignore[dict-item]
        "auroc": tuple(float(v) for v in np.percentile(auc, q)),  # type: ignore[dict-item]
    }
