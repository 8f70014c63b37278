"""Expert agreement on the released votes: the published kappas, leave-one-out references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mitobench.data.registry import load
from mitobench.evaluate.raters import agreement, loo_reference


def test_amibr_fleiss_kappa(real_root: Path) -> None:
    r = agreement(load("amibr/all", real_root))
    assert r["fleiss_kappa"] == pytest.approx(0.58, abs=0.01)
    assert r["n"] == 3720 and len(r["experts"]) == 3
    assert min(r["pairwise_kappa"].values()) >= 0.52 and max(r["pairwise_kappa"].values()) <= 0.67


def test_atnorm_md_fleiss_kappa(real_root: Path) -> None:
    r = agreement(load("atnorm-md", real_root))
    assert r["fleiss_kappa"] == pytest.approx(0.41, abs=0.01)
    kappas = r["pairwise_kappa"].values()
    assert len(kappas) == 10 and min(kappas) >= 0.22 and max(kappas) <= 0.66


def test_leave_one_out_reference_skips_ties() -> None:
    votes = np.array([[1, 1, 0], [1, 0, 1], [0, 0, 0], [1, 1, 1]])
    np.testing.assert_array_equal(loo_reference(votes, 0), [-1, -1, 0, 1])  # experts 2 and 3 tie twice
    np.testing.assert_array_equal(loo_reference(votes, 2), [1, -1, 0, 1])


def test_models_are_scored_against_the_same_references(real_root: Path) -> None:
    ds = load("atnorm-md", real_root)
    majority = ds.frame["majority"].to_numpy()
    r = agreement(ds, {"majority-oracle": majority, "always-normal": np.zeros(len(ds), dtype=int)})
    for _ref, scores in r["leave_one_out"].items():
        assert scores["always-normal"]["balanced_accuracy"] == 0.5
        expert = next(k for k in scores if k.startswith("expert"))
        assert scores["majority-oracle"]["n"] == scores[expert]["n"]
    assert r["by_agreement"]["majority-oracle"]["unanimous"] == 1.0
    assert 0 < r["unanimous_fraction"] < 1
