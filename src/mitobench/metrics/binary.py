"""Binary classification metrics with atypical (1) as the positive class."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    roc_auc_score,
)

from mitobench.metrics.calibration import ece


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


def _confusion(labels: np.ndarray, preds: np.ndarray) -> tuple[int, int, int, int]:
    tn, fp, fn, tp = confusion_matrix(labels, preds, labels=[0, 1]).ravel()
    return int(tn), int(fp), int(fn), int(tp)


def _sensitivity(labels: np.ndarray, calls: np.ndarray) -> float:
    """Share of the positives called positive (of the negatives, with both sides flipped)."""
    _, _, fn, tp = _confusion(labels, calls)
    return float(tp / (tp + fn)) if tp + fn else float("nan")


def _two_classes(labels: np.ndarray) -> bool:
    return len(np.unique(labels)) == 2


@dataclass(frozen=True)
class Metric:
    """One registered metric: how it is computed from (labels, probabilities, 0/1 calls) and how
    the report and the CLI show it. `shown` metrics get a column with bootstrap CIs in the
    report's table and in a run's summary; every metric is stored per fold."""

    name: str
    label: str
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    short: str = ""
    """Column prefix in the report's table (default: the name)."""
    shown: bool = False

    @property
    def column(self) -> str:
        return self.short or self.name


REGISTRY: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("balanced_accuracy", "bal. acc", lambda y, p, c: balanced_accuracy(y, c), "bacc", shown=True),
        Metric("auroc", "AUROC", lambda y, p, c: auroc(y, p), shown=True),
        Metric(
            "average_precision",
            "average precision",
            lambda y, p, c: float(average_precision_score(y, p)) if _two_classes(y) else float("nan"),
        ),
        Metric("sensitivity", "sensitivity", lambda y, p, c: _sensitivity(y, c)),
        Metric("specificity", "specificity", lambda y, p, c: _sensitivity(1 - y, 1 - c)),
        Metric("f1", "F1", lambda y, p, c: float(f1_score(y, c, zero_division=0))),
        Metric("mcc", "MCC", lambda y, p, c: float(matthews_corrcoef(y, c))),
        Metric("ece", "ECE", lambda y, p, c: ece(y, p), shown=True),
    )
}
"""Every metric mitobench reports, in order; a new one is one entry here."""

METRICS: tuple[str, ...] = tuple(REGISTRY)


def shown_metrics() -> list[Metric]:
    """The metrics with a column (and CIs) in the report's table and the run summary."""
    return [m for m in REGISTRY.values() if m.shown]


def compute(labels: np.ndarray, probs: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All registered metrics of one set of predictions (AUROC/AP are NaN with a single class),
    with the threshold and the count."""
    labels = np.asarray(labels).astype(int)
    probs = np.asarray(probs, dtype=np.float64)
    calls = (probs >= threshold).astype(int)
    out: dict[str, float] = {name: m.fn(labels, probs, calls) for name, m in REGISTRY.items()}
    return {**out, "threshold": float(threshold), "n": len(labels)}


def ensemble_scores(labels: np.ndarray, probs: np.ndarray, thresholds: np.ndarray) -> dict[str, float]:
    """The fold ensemble's metrics: the mean probability of the fold models (rows of `probs`) at
    the mean of their thresholds."""
    return compute(labels, np.asarray(probs, dtype=np.float64).mean(axis=0), float(np.mean(thresholds)))


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


def call_rate_threshold(probs: np.ndarray, share: float) -> float:
    """The threshold that calls `share` of `probs` atypical: the k-th largest probability, k the
    share's count rounded (ties at it are called too); above every probability when k is 0. Used
    to carry a call rate, not a threshold value, from one set of figures to another."""
    probs = np.sort(np.asarray(probs, dtype=np.float64))[::-1]
    if not 0.0 <= share <= 1.0 or probs.size == 0:
        raise ValueError(f"share {share} must be in [0, 1] and the probabilities not empty")
    k = round(share * probs.size)
    return float(np.nextafter(probs[0], np.inf)) if k == 0 else float(probs[k - 1])


def summarise(per_fold: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Mean and sample standard deviation (ddof 1) over fold models; the paper printed np.std
    (ddof 0), which the report shows beside its published figures."""
    out: dict[str, dict[str, Any]] = {}
    for name in REGISTRY:
        values = np.array([m[name] for m in per_fold], dtype=np.float64)
        out[name] = {
            "mean": float(np.nanmean(values)),
            "std": float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0,
            "values": [float(v) for v in values],
        }
    return out
