"""Expert agreement: do accuracies reflect biology or disagreement between pathologists?

Pairwise Cohen's κ and Fleiss' κ among the experts; each expert scored against the majority of
the *other* experts (leave-one-out) as the human reference, and each model scored against the
very same references; model accuracy on unanimous versus split figures; errors per subtype.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from mitobench.data.dataset import Dataset, vote_columns
from mitobench.data.registry import load, voted_sets
from mitobench.metrics.binary import compute


def loo_reference(votes: np.ndarray, expert: int) -> np.ndarray:
    """Majority of the other experts: 1, 0, or -1 where they tie (such figures are left out)."""
    others = np.delete(votes, expert, axis=1)
    atyp = others.sum(axis=1)
    ref = np.where(2 * atyp > others.shape[1], 1, 0)
    return np.where(2 * atyp == others.shape[1], -1, ref)


def _score(reference: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    keep = reference >= 0
    m = compute(reference[keep], predicted[keep].astype(float), 0.5)
    return {
        "n": int(keep.sum()),
        "balanced_accuracy": m["balanced_accuracy"],
        "sensitivity": m["sensitivity"],
        "specificity": m["specificity"],
        "kappa": float(cohen_kappa_score(reference[keep], predicted[keep])),
    }


def complete_votes(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the figures every expert voted on, their votes as 0/1 (figures, experts))."""
    cols = vote_columns(dataset.frame)
    if len(cols) < 2:
        raise ValueError(f"{dataset.key} has no expert votes")
    complete = dataset.frame[cols].notna().all(axis=1).to_numpy()
    return complete, dataset.frame.loc[complete, cols].to_numpy(dtype=int)


def agreement(dataset: Dataset, model_labels: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The full analysis for one dataset; `model_labels` maps a model to its 0/1 calls per figure."""
    frame = dataset.frame
    cols = vote_columns(frame)
    complete, votes = complete_votes(dataset)
    model_labels = {k: np.asarray(v)[complete] for k, v in (model_labels or {}).items()}
    experts = [c.removeprefix("vote_") for c in cols]
    out: dict[str, Any] = {
        "dataset": dataset.key,
        "n": int(complete.sum()),
        "experts": experts,
        "fleiss_kappa": float(fleiss_kappa(aggregate_raters(votes)[0])),
        "pairwise_kappa": {
            f"{experts[i]}-{experts[j]}": float(cohen_kappa_score(votes[:, i], votes[:, j]))
            for i, j in combinations(range(len(cols)), 2)
        },
    }
    loo: dict[str, dict[str, dict[str, float]]] = {}
    for e, name in enumerate(experts):
        ref = loo_reference(votes, e)
        row = {f"expert {name}": _score(ref, votes[:, e])}
        for model, labels in model_labels.items():
            row[model] = _score(ref, labels)
        loo[f"vs majority of others than {name}"] = row
    out["leave_one_out"] = loo
    share = votes.mean(axis=1)
    unanimous = (share == 0) | (share == 1)
    majority = (2 * votes.sum(axis=1) > votes.shape[1]).astype(int)
    out["unanimous_fraction"] = float(unanimous.mean())
    out["by_agreement"] = {
        model: {
            "unanimous": float((labels[unanimous] == majority[unanimous]).mean()),
            "split": float((labels[~unanimous] == majority[~unanimous]).mean())
            if (~unanimous).any()
            else None,
        }
        for model, labels in model_labels.items()
    }
    if "subtype_1" in frame.columns and model_labels:
        sub = frame.loc[complete, "subtype_1"].to_numpy()
        label = frame.loc[complete, "label"].to_numpy()
        out["error_by_subtype"] = {
            model: {str(s): float((labels[sub == s] != label[sub == s]).mean()) for s in sorted(set(sub))}
            for model, labels in model_labels.items()
        }
        out["subtype_counts"] = {str(s): int((sub == s).sum()) for s in sorted(set(sub))}
    return out


def agreement_in(data_root: Path) -> list[dict[str, Any]]:
    """Expert agreement on every dataset of the data root that carries its experts' votes."""
    return [agreement(load(key, data_root)) for key in voted_sets(data_root)]
