"""ECE and temperature scaling, against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import balanced_accuracy_score, log_loss

from mitobench.metrics.binary import compute
from mitobench.metrics.calibration import apply_temperature, ece, fit_temperature, prior_threshold


def test_ece_equals_the_weighted_gap_of_sklearns_reliability_curve() -> None:
    rng = np.random.default_rng(0)
    probs = rng.uniform(0, 1, 500)
    labels = (rng.uniform(0, 1, 500) < probs**1.5).astype(int)
    frac, mean_p = calibration_curve(labels, probs, n_bins=10, strategy="uniform")
    counts = np.histogram(probs, bins=np.linspace(0, 1, 11))[0]
    weights = counts[counts > 0] / len(probs)
    assert ece(labels, probs) == pytest.approx(float(np.sum(weights * np.abs(frac - mean_p))))
    assert compute(labels, probs)["ece"] == pytest.approx(
        ece(labels, probs)
    )  # registered: every table has it


def test_ece_of_perfect_and_of_confidently_wrong_predictions() -> None:
    labels = np.array([0, 0, 1, 1])
    assert ece(labels, np.array([0.0, 0.0, 1.0, 1.0])) == 0.0
    assert ece(labels, np.array([1.0, 1.0, 0.0, 0.0])) == 1.0


def test_temperature_recovers_a_known_overconfidence() -> None:
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, 20_000)
    labels = (rng.uniform(0, 1, len(z)) < 1 / (1 + np.exp(-z))).astype(int)
    overconfident = 1 / (1 + np.exp(-3 * z))  # logits three times too large
    t = fit_temperature(labels, overconfident)
    assert t == pytest.approx(3.0, rel=0.05)
    scaled = apply_temperature(overconfident, t)
    assert log_loss(labels, scaled) < log_loss(labels, overconfident)
    assert ece(labels, scaled) < ece(labels, overconfident) / 3
    # monotone: the same calls at the mapped threshold, so balanced accuracy and AUROC stay
    threshold = 0.3
    mapped = apply_temperature(np.array([threshold]), t)[0]
    np.testing.assert_array_equal(overconfident >= threshold, scaled >= mapped)


def test_one_class_has_nothing_to_fit() -> None:
    assert fit_temperature(np.ones(5, int), np.full(5, 0.9)) == 1.0


def _drawn(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """True logits z (about a quarter atypical) and labels drawn from sigmoid(z)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(-1.5, 1.5, n)
    return z, (rng.uniform(0, 1, n) < 1 / (1 + np.exp(-z))).astype(int)


def test_prior_threshold_undoes_a_known_miscalibration() -> None:
    z, labels = _drawn(2, 50_000)
    raw = 1 / (1 + np.exp(-(3 * z - 1)))  # logits three times too large and shifted by -1
    share = labels.mean()
    # calibrated P = share at z = logit(share), which the model reports as 3 logit(share) - 1
    expected = 1 / (1 + np.exp(-(3 * np.log(share / (1 - share)) - 1)))
    assert prior_threshold(labels, raw) == pytest.approx(expected, abs=0.01)


def test_prior_threshold_reaches_the_best_balanced_accuracy_of_calibrated_scores() -> None:
    z, labels = _drawn(3, 20_000)
    probs = 1 / (1 + np.exp(-z))
    cuts = np.quantile(probs, np.linspace(0.01, 0.99, 393))  # a brute-force search
    best = max(balanced_accuracy_score(labels, probs >= t) for t in cuts)
    assert balanced_accuracy_score(labels, probs >= prior_threshold(labels, probs)) > best - 0.005


def test_prior_threshold_falls_back_to_half_with_nothing_to_fit() -> None:
    assert prior_threshold(np.ones(5, int), np.full(5, 0.9)) == 0.5
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert prior_threshold(labels, np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])) == 0.5  # falls with the label
