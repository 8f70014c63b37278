"""Metrics use atypical (1) as the positive class and agree with scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

from mitobench.metrics.binary import (
    best_threshold,
    call_rate_threshold,
    compute,
    selection_score,
    summarise,
)


def test_metrics_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    m = compute(y, p, 0.5)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p >= 0.5))
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p))
    tp = ((p >= 0.5) & (y == 1)).sum()
    assert m["sensitivity"] == pytest.approx(tp / (y == 1).sum())


def test_atypical_is_the_positive_class() -> None:
    y = np.array([1, 1, 0, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.1, 0.1, 0.1, 0.1])  # finds one of two atypical figures
    m = compute(y, p)
    assert m["sensitivity"] == 0.5 and m["specificity"] == 1.0


def test_best_threshold_maximises_balanced_accuracy() -> None:
    y = np.array([0, 0, 0, 1, 1])
    p = np.array([0.05, 0.1, 0.2, 0.3, 0.35])  # separable, but below 0.5
    t = best_threshold(y, p)
    assert compute(y, p, 0.5)["balanced_accuracy"] == 0.5
    assert compute(y, p, t)["balanced_accuracy"] == 1.0


def test_summary_is_mean_and_sample_std() -> None:
    folds = [compute(np.array([0, 1]), np.array([0.2, x])) for x in (0.9, 0.1, 0.9)]
    s = summarise(folds)["balanced_accuracy"]
    assert s["values"] == [1.0, 0.5, 1.0]
    assert s["mean"] == pytest.approx(2.5 / 3) and s["std"] == pytest.approx(np.std([1, 0.5, 1], ddof=1))


def test_selection_score_equals_the_full_metric() -> None:
    rng = np.random.default_rng(3)
    labels = (rng.random(300) < 0.25).astype(int)
    probs = np.clip(labels * 0.3 + rng.random(300) * 0.7, 0, 1)
    full = compute(labels, probs, 0.4)
    for name in ("balanced_accuracy", "auroc", "mcc"):
        assert selection_score(name, labels, probs, 0.4) == pytest.approx(full[name], abs=1e-12)
    assert np.isnan(selection_score("auroc", np.ones(5, dtype=int), probs[:5], 0.5))


def test_threshold_half_on_atypical_is_the_scripts_rule_on_normal() -> None:
    """The scripts code Normal=1 and call `sigmoid(logit) > 0.5`; we code Atypical=1 and call
    P(atypical) >= 0.5. With P(atypical) = 1 - P(normal) the calls agree, ties included."""
    import torch

    rng = np.random.default_rng(0)
    normal_logit = np.concatenate([rng.normal(0, 2, 200), [0.0, 0.0]])  # two exact ties
    normal = np.concatenate([rng.integers(0, 2, 200), [0, 1]])
    script_pred = (torch.sigmoid(torch.tensor(normal_logit)) > 0.5).numpy().astype(int)
    script_bacc = balanced_accuracy_score(normal, script_pred)
    p_atypical = 1 - torch.sigmoid(torch.tensor(normal_logit)).numpy()
    ours = compute(1 - normal, p_atypical, 0.5)
    assert ours["balanced_accuracy"] == script_bacc
    assert np.array_equal((p_atypical >= 0.5).astype(int), 1 - script_pred)


def test_the_one_balanced_accuracy_is_scikit_learns() -> None:
    from mitobench.metrics.binary import balanced_accuracy

    rng = np.random.default_rng(4)
    for _ in range(20):
        y, pred = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
        if len(np.unique(y)) == 2:
            assert balanced_accuracy(y, pred) == pytest.approx(balanced_accuracy_score(y, pred))
    assert np.isnan(balanced_accuracy(np.ones(5), np.ones(5)))


def test_call_rate_threshold_calls_the_share_asked_for() -> None:
    probs = np.random.default_rng(6).random(101)
    for share in (0.0, 0.1, 0.25, 0.5, 1.0):
        t = call_rate_threshold(probs, share)
        assert np.sum(probs >= t) == round(share * 101)
    assert np.sum(probs >= call_rate_threshold(probs, 0.0)) == 0
    with pytest.raises(ValueError, match="share"):
        call_rate_threshold(probs, 1.5)
