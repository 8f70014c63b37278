"""Logistic-regression probe (class_weight balanced, C chosen on validation), as a linear head."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from mitobench.metrics.binary import compute


def fit_logistic(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    c_grid: list[float],
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor, float, float]:
    """Fit on standardised embeddings for each C; keep the best by validation AUROC.

    Returns the equivalent (weight, bias) on raw embeddings so the head is a plain nn.Linear,
    plus the chosen C and its validation AUROC.
    """
    scaler = StandardScaler().fit(x_train)
    xt, xv = scaler.transform(x_train), scaler.transform(x_val)
    best = None
    for c in c_grid:
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed)
        clf.fit(xt, y_train)
        auroc = compute(y_val, clf.predict_proba(xv)[:, 1])["auroc"]
        if best is None or auroc > best[0]:
            best = (auroc, c, clf)
    assert best is not None
    auroc, c, clf = best
    scale = np.where(scaler.scale_ == 0, 1.0, scaler.scale_)
    weight = clf.coef_[0] / scale
    bias = clf.intercept_[0] - float(np.sum(clf.coef_[0] * scaler.mean_ / scale))
    return (
        torch.tensor(weight, dtype=torch.float32).view(1, -1),
        torch.tensor([bias], dtype=torch.float32),
        float(c),
        float(auroc),
    )
