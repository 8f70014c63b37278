"""Binary classification metrics with atypical (1) as the positive class."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    roc_auc_score,
)

METRICS = ("balanced_accuracy", "auroc", "average_precision", "sensitivity", "specificity", "f1", "mcc")


def balanced_accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
    """Mean of sensitivity and specificity of 0/1 predictions; NaN with a single class.

    The one implementation (the bootstrap calls it thousands of times; equal to scikit-learn's
    `balanced_accuracy_score` on two classes, tested)."""
    pos = np.asarray(labels) == 1
    if pos.all() or not pos.any():
        return float("nan")
    preds = np.asarray(preds).astype(bool)
    return float(0.5 * (preds[pos].mean() + (~preds[~pos]).mean()))


def auroc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Area under the ROC curve; NaN with a single class."""
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, probs))


def compute(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All reported metrics of one set of predictions; AUROC/AP are NaN with a single class."""
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    preds = (probs >= threshold).astype(int)
    tn, fp, fn, tp = confusion_matrix(labels, preds, labels=[0, 1]).ravel()
    both = len(np.unique(labels)) == 2
    return {
        "balanced_accuracy": balanced_accuracy(labels, preds),
        "auroc": auroc(labels, probs),
        "average_precision": float(average_precision_score(labels, probs)) if both else float("nan"),
        "sensitivity": float(tp / (tp + fn)) if tp + fn else float("nan"),
        "specificity": float(tn / (tn + fp)) if tn + fp else float("nan"),
        "f1": float(f1_score(labels, preds, zero_division=0)),
        "mcc": float(matthews_corrcoef(labels, preds)),
        "threshold": float(threshold),
        "n": len(labels),
    }


def selection_score(name: str, labels: np.ndarray, probs: np.ndarray, threshold: float) -> float:
    """One metric for picking the best epoch, without computing all of `compute` every epoch."""
    labels = np.asarray(labels).astype(int)
    if name == "auroc":
        return auroc(labels, probs)
    if name == "balanced_accuracy":
        return balanced_accuracy(labels, np.asarray(probs) >= threshold)
    return compute(labels, probs, threshold)[name]


def best_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The threshold that maximises balanced accuracy (Youden's J) on the given predictions.

    Ties are broken towards 0.5 so that an uninformative validation set keeps the default.
    """
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        return 0.5
    candidates = np.unique(np.concatenate([probs, [0.5]]))
    best, best_score = 0.5, -1.0
    for t in candidates:
        score = balanced_accuracy(labels, probs >= t)
        if score > best_score + 1e-12 or (
            abs(score - best_score) <= 1e-12 and abs(t - 0.5) < abs(best - 0.5)
        ):
            best, best_score = float(t), float(score)
    return best


def summarise(per_fold: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Mean and sample standard deviation (ddof 1) over fold models; the paper printed np.std
    (ddof 0), which the report shows beside its published figures."""
    out: dict[str, dict[str, Any]] = {}
    for name in METRICS:
        values = np.array([m[name] for m in per_fold], dtype=np.float64)
        out[name] = {
            "mean": float(np.nanmean(values)),
            "std": float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": [float(v) for v in values],
        }
    return out
