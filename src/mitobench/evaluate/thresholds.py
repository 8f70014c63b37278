"""How well a threshold rule carries to figures it was not chosen on, measured across folds.

A model trained on every figure has no held-out data of its own, so its threshold must come from
other models' out-of-fold predictions. Holding out each fold in turn and choosing the threshold on
the others, by each rule, then scoring it on the held-out fold, says what a rule costs against the
fold's own best threshold (which is optimistic: chosen on the figures it is scored on) — on
validation predictions only, never a test set.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mitobench.metrics.binary import balanced_accuracy, best_threshold, call_rate_threshold
from mitobench.metrics.calibration import prior_threshold

RULES = ("own", "pooled_others", "mean_of_others", "default")
"""own: the held-out fold's best (optimistic); pooled_others: best on the other folds' predictions
pooled (`mitobench distil`'s rule for its final student); mean_of_others: the mean of the other
folds' own thresholds; default: 0.5. The model card's table shows these."""
ALL_RULES = (*RULES, "prior_others", "call_rate_others")
"""... and prior_others: where a Platt fit of the other folds' predictions pooled reaches their
atypical share (`metrics.calibration.prior_threshold`), a smooth rule compared on validation;
call_rate_others: the share of the other folds' figures that pooled_others' threshold calls
atypical, called on the held-out fold (a quantile of its own unlabelled probabilities: transductive,
docs/recipes.md)."""
POOLED_RULES = {"pooled_others": best_threshold, "prior_others": prior_threshold}
"""The rules that read the other folds' predictions pooled: each one's threshold from (labels, probs)."""


def threshold_transfer(folds: dict[int, pd.DataFrame], rules: Sequence[str] = RULES) -> pd.DataFrame:
    """One row per held-out fold and rule: the threshold and the held-out fold's balanced accuracy
    at it. `folds` maps each fold to its validation predictions (columns label, prob)."""
    if len(folds) < 2:
        raise ValueError("threshold transfer needs the validation predictions of two folds or more")
    unknown = sorted(set(rules) - set(ALL_RULES))
    if unknown:
        raise ValueError(f"unknown threshold rules {unknown}; known: {', '.join(ALL_RULES)}")
    own = {k: best_threshold(f["label"].to_numpy(), f["prob"].to_numpy()) for k, f in folds.items()}
    rows = []
    for k, held_out in folds.items():
        others = pd.concat([f for j, f in folds.items() if j != k], ignore_index=True)
        labels, probs = held_out["label"].to_numpy(), held_out["prob"].to_numpy()
        pooled = best_threshold(others["label"].to_numpy(), others["prob"].to_numpy())
        for rule in rules:
            t = _threshold(rule, own, k, others, pooled, probs)
            rows.append({"fold": k, "rule": rule, "threshold": t,
                         "balanced_accuracy": balanced_accuracy(labels, probs >= t)})  # fmt: skip
    return pd.DataFrame(rows)


def _threshold(
    rule: str, own: dict[int, float], k: int, others: pd.DataFrame, pooled: float, held_out: np.ndarray
) -> float:
    """Fold `k`'s threshold by `rule`, from the folds' own thresholds, the others' predictions, their
    pooled best threshold `pooled` and (call_rate_others only) the held-out fold's probabilities,
    never its labels."""
    if rule == "pooled_others":
        return pooled
    if rule == "call_rate_others":
        return call_rate_threshold(held_out, float(np.mean(others["prob"].to_numpy() >= pooled)))
    if rule in POOLED_RULES:
        return POOLED_RULES[rule](others["label"].to_numpy(), others["prob"].to_numpy())
    if rule == "own":
        return own[k]
    if rule == "mean_of_others":
        return float(np.mean([t for j, t in own.items() if j != k]))
    return 0.5  # default
