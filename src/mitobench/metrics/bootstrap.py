"""Bootstrap 95% confidence intervals for the fold-mean of a metric on one test set.

Each resample draws figures with replacement (or whole slides, where slides are known, since
figures of one slide are not independent) and recomputes every fold model's metric on the
same resample; the interval is taken over the resampled fold means.
"""

from __future__ import annotations

import numpy as np

from mitobench.metrics.binary import Metric, shown_metrics

SEED = 0
"""The resampling seed every interval uses unless told otherwise (recorded beside the CIs)."""


def bootstrap_ci(
    labels: np.ndarray,
    fold_probs: np.ndarray,
    thresholds: np.ndarray,
    groups: np.ndarray | None = None,
    n_boot: int = 1000,
    seed: int = SEED,
    metrics: list[Metric] | None = None,
) -> dict[str, tuple[float, float]]:
    """95% percentile intervals of the fold mean of each metric (default: the shown ones).

    `fold_probs` is (n_folds, n_samples); `thresholds` one per fold.
    """
    metrics = metrics if metrics is not None else shown_metrics()
    rng = np.random.default_rng(seed)
    n = len(labels)
    calls = (fold_probs >= thresholds[:, None]).astype(int)
    if groups is not None:
        uniq, inverse = np.unique(groups, return_inverse=True)
        members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    draws: dict[str, list[float]] = {m.name: [] for m in metrics}
    for _ in range(n_boot):
        if groups is not None:
            picked = rng.integers(0, len(members), len(members))
            idx = np.concatenate([members[g] for g in picked])
        else:
            idx = rng.integers(0, n, n)
        y = labels[idx]
        if len(np.unique(y)) < 2:  # a resample of one class: the metrics need both
            continue
        for m in metrics:
            draws[m.name].append(
                float(np.mean([m.fn(y, p[idx], c[idx]) for p, c in zip(fold_probs, calls, strict=True)]))
            )
    out: dict[str, tuple[float, float]] = {}
    for name, values in draws.items():
        if not values:  # one class in the whole set
            out[name] = (np.nan, np.nan)
        else:
            low, high = np.percentile(values, (2.5, 97.5))
            out[name] = (float(low), float(high))
    return out
