"""Is accuracy limited by label noise? Models scored by how much the experts agreed.

For each figure with expert votes: its agreement level (AMi-Br's three experts: 3/3 or 2/3;
AtNorM-MD's five: 5/5, 4/5 or 3/5), the fraction of experts who called it atypical, and the
model's P(atypical). Per level: balanced accuracy and AUROC against the majority, with bootstrap
95 % CIs; over all figures: the rank correlation between P(atypical) and the atypical vote share.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import spearmanr

from mitobench.data.dataset import Dataset
from mitobench.evaluate.raters import complete_votes
from mitobench.metrics.binary import compute
from mitobench.metrics.bootstrap import bootstrap_ci


def agreement_level(votes: np.ndarray) -> np.ndarray:
    """`k/n`: how many of the n experts sided with the majority, per figure."""
    n = votes.shape[1]
    k = np.maximum(votes.sum(axis=1), n - votes.sum(axis=1))
    return np.array([f"{int(v)}/{n}" for v in k])


def _scores(labels: np.ndarray, probs: np.ndarray, threshold: float, groups, n_boot: int) -> dict[str, Any]:
    m = compute(labels, probs, threshold)
    ci = bootstrap_ci(labels, probs[None], np.array([threshold]), groups, n_boot=n_boot) if n_boot else {}
    return {
        "n": len(labels),
        "n_atypical": int(labels.sum()),
        "balanced_accuracy": m["balanced_accuracy"],
        "balanced_accuracy_ci95": list(ci.get("balanced_accuracy", (np.nan, np.nan))),
        "auroc": m["auroc"],
        "auroc_ci95": list(ci.get("auroc", (np.nan, np.nan))),
    }


def noise_analysis(
    dataset: Dataset, models: dict[str, tuple[np.ndarray, float]], n_boot: int = 1000
) -> dict[str, Any]:
    """Per model (name -> (P(atypical) per figure in the dataset's order, threshold)): scores by
    agreement level and the rank correlation with the experts' atypical vote share."""
    frame = dataset.frame
    complete, votes = complete_votes(dataset)
    labels = dataset.labels[complete]
    groups = frame.loc[complete, "group"].to_numpy() if frame["group"].notna().all() else None
    level = agreement_level(votes)
    share = votes.mean(axis=1)
    levels = sorted(set(level), key=lambda s: -int(s.split("/")[0]))
    out: dict[str, Any] = {
        "dataset": dataset.key,
        "experts": votes.shape[1],
        "levels": {lv: int((level == lv).sum()) for lv in levels},
        "models": {},
    }
    for name, (probs, threshold) in models.items():
        p = np.asarray(probs)[complete]
        per_level = {}
        for lv in levels:
            m = level == lv
            per_level[lv] = _scores(
                labels[m], p[m], threshold, groups[m] if groups is not None else None, n_boot
            )
        rho, pval = spearmanr(p, share)
        out["models"][name] = {
            "all": _scores(labels, p, threshold, groups, n_boot),
            "by_level": per_level,
            "spearman_vote_share": {"rho": float(rho), "p": float(pval)},
        }
    return out
