"""Models scored by expert agreement, and correlated with the experts' vote share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mitobench.data.dataset import Dataset
from mitobench.evaluate.label_noise import agreement_level, noise_analysis


def _voted(n: int = 300, experts: int = 5, seed: int = 0) -> tuple[Dataset, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.random(n) < 0.3
    noise = np.where(rng.random(n) < 0.5, 0.05, 0.35)  # half the figures are hard
    votes = (rng.random((n, experts)) < np.where(truth, 1 - noise, noise)[:, None]).astype(int)
    majority = (2 * votes.sum(axis=1) > experts).astype(int)
    frame = pd.DataFrame({"id": [f"f{i}" for i in range(n)], "path": "", "label": majority, "group": pd.NA})
    for e in range(experts):
        frame[f"vote_{e + 1}"] = votes[:, e]
    return Dataset("voted", "test", frame), truth


def test_agreement_levels() -> None:
    votes = np.array([[1, 1, 1], [1, 0, 1], [0, 0, 0], [0, 1, 0]])
    assert agreement_level(votes).tolist() == ["3/3", "2/3", "3/3", "2/3"]
    five = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    assert agreement_level(five).tolist() == ["5/5", "4/5", "3/5"]


def test_a_model_that_follows_the_votes_ranks_like_them_and_errs_where_they_split() -> None:
    ds, truth = _voted()
    votes = ds.frame[[c for c in ds.frame.columns if c.startswith("vote_")]].to_numpy()
    share = votes.mean(axis=1)
    rng = np.random.default_rng(1)
    follower = np.clip(share + rng.normal(0, 0.02, len(share)), 0, 1)
    biology = np.clip(truth * 0.6 + rng.uniform(0, 0.4, len(truth)), 0, 1)  # right about the figure itself
    out = noise_analysis(ds, {"follower": (follower, 0.5), "biology": (biology, 0.5)}, n_boot=200)
    assert set(out["levels"]) == {"5/5", "4/5", "3/5"} and sum(out["levels"].values()) == len(ds)
    m = out["models"]["follower"]
    assert m["spearman_vote_share"]["rho"] > 0.95
    b = out["models"]["biology"]["by_level"]  # the majority is wrong more often where experts split
    assert b["5/5"]["balanced_accuracy"] > b["3/5"]["balanced_accuracy"] + 0.1
    lo, hi = m["all"]["balanced_accuracy_ci95"]
    assert lo <= m["all"]["balanced_accuracy"] <= hi
    assert m["by_level"]["5/5"]["n"] == out["levels"]["5/5"]


def test_without_votes_it_says_so() -> None:
    frame = pd.DataFrame({"id": ["a"], "path": "", "label": [1], "group": pd.NA})
    with pytest.raises(ValueError, match="no expert votes"):
        noise_analysis(Dataset("x", "test", frame), {})
