"""Threshold transfer across folds, checked against a brute-force scikit-learn search."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from sklearn.metrics import balanced_accuracy_score

from mitobench.evaluate.thresholds import ALL_RULES, RULES, threshold_transfer


def _fold(rng: np.random.Generator, n: int, share: float, shift: float) -> pd.DataFrame:
    labels = (rng.random(n) < share).astype(int)
    logits = rng.normal(1.2 * labels - 1.0 + shift, 1.0)
    return pd.DataFrame({"label": labels, "prob": 1 / (1 + np.exp(-logits))})


def _best_score(frame: pd.DataFrame) -> float:
    """The best balanced accuracy any threshold reaches on `frame` (every distinct cut tried)."""
    y, p = frame["label"].to_numpy(), frame["prob"].to_numpy()
    cuts = np.concatenate([np.unique(p), [np.inf]])
    return max(balanced_accuracy_score(y, p >= t) for t in cuts)


def test_each_rule_is_scored_on_the_fold_it_did_not_see() -> None:
    rng = np.random.default_rng(3)
    folds = {k: _fold(rng, 150, share, shift)
             for k, (share, shift) in enumerate([(0.3, 0.0), (0.15, -0.4), (0.25, 0.3)])}  # fmt: skip
    table = threshold_transfer(folds, ALL_RULES)
    assert sorted(table["fold"].unique()) == [0, 1, 2]
    assert set(table["rule"]) == set(ALL_RULES) and len(table) == 3 * len(ALL_RULES)
    for k, held_out in folds.items():
        rows = table[table["fold"] == k].set_index("rule")
        y, p = held_out["label"].to_numpy(), held_out["prob"].to_numpy()
        for _, row in rows.iterrows():  # every score is the held-out fold's, at that threshold
            expected = balanced_accuracy_score(y, p >= row["threshold"])
            assert row["balanced_accuracy"] == pytest.approx(expected)
        # own: the best threshold on the fold itself
        assert rows.loc["own", "balanced_accuracy"] == pytest.approx(_best_score(held_out))
        # pooled_others: the best threshold on the other folds pooled, never on this one
        others = pd.concat([f for j, f in folds.items() if j != k], ignore_index=True)
        t = rows.loc["pooled_others", "threshold"]
        at_t = balanced_accuracy_score(others["label"], others["prob"] >= t)
        assert at_t == pytest.approx(_best_score(others))
        own_others = [table[(table["fold"] == j) & (table["rule"] == "own")]["threshold"].item()
                      for j in folds if j != k]  # fmt: skip
        assert rows.loc["mean_of_others", "threshold"] == pytest.approx(np.mean(own_others))
        assert rows.loc["default", "threshold"] == 0.5
        # prior_others: where statsmodels' logistic fit on the others' logits reaches their share
        z = np.log(others["prob"] / (1 - others["prob"])).to_numpy()
        b, a = sm.Logit(others["label"].to_numpy(), sm.add_constant(z)).fit(disp=0).params
        share = others["label"].mean()
        at = 1 / (1 + np.exp(-(np.log(share / (1 - share)) - b) / a))
        assert rows.loc["prior_others", "threshold"] == pytest.approx(at, abs=1e-3)
        # call_rate_others: calls the held-out fold at the share pooled_others calls on the others
        share = float(np.mean(others["prob"] >= t))
        called = int(np.sum(p >= rows.loc["call_rate_others", "threshold"]))
        assert called == round(share * len(p))
        assert (rows["balanced_accuracy"] <= rows.loc["own", "balanced_accuracy"] + 1e-12).all()
    # the folds were drawn with shifted scores, so the rules disagree somewhere
    assert table.groupby("fold")["threshold"].nunique().max() > 1


def test_one_fold_is_refused() -> None:
    with pytest.raises(ValueError, match="two folds"):
        threshold_transfer({0: pd.DataFrame({"label": [0, 1], "prob": [0.2, 0.8]})})


def test_the_cards_rules_by_default_and_unknown_rules_refused() -> None:
    rng = np.random.default_rng(4)
    folds = {k: _fold(rng, 100, 0.3, 0.0) for k in range(2)}
    assert set(threshold_transfer(folds)["rule"]) == set(RULES)
    with pytest.raises(ValueError, match="unknown threshold rules"):
        threshold_transfer(folds, ["best_on_test"])


def test_call_rate_never_reads_the_held_out_labels() -> None:
    rng = np.random.default_rng(5)
    folds = {k: _fold(rng, 120, 0.25, 0.2 * k) for k in range(3)}
    shuffled = {k: f.assign(label=rng.permutation(f["label"].to_numpy())) if k == 0 else f
                for k, f in folds.items()}  # fmt: skip
    rule = ["call_rate_others"]
    a, b = threshold_transfer(folds, rule), threshold_transfer(shuffled, rule)
    assert a.loc[a["fold"] == 0, "threshold"].item() == b.loc[b["fold"] == 0, "threshold"].item()
