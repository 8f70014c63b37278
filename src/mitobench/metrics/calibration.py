"""Calibration of P(atypical): expected calibration error and temperature scaling.

ECE here is the binary (positive-class) form drawn by the report's reliability diagram: the
probabilities are cut into `bins` equal-width bins on [0, 1], and ECE is the figure-weighted mean
gap |fraction atypical - mean P(atypical)| over the non-empty bins.

Temperature scaling divides each model's logit by one scalar T > 0, fitted by minimising the
log-loss on that model's *validation* predictions (never a test set); it changes no call at the
correspondingly mapped threshold, so balanced accuracy and AUROC stay the same and only the
probabilities' calibration moves.

The prior threshold is a smooth alternative to the balanced-accuracy argmax: where P(atypical) is
calibrated, calling atypical from P >= the atypical share maximises balanced accuracy, so a Platt
fit (logistic regression on the logit, slope and intercept) of validation predictions gives the raw
threshold at which the fitted P reaches the share. It is fitted on every figure, not decided by the
few near the cut, and so moves less between samples than an argmax of a step function.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.linear_model import LogisticRegression

BINS = 10
"""Equal-width bins of the ECE and of the reliability diagram."""
_EPS = 1e-6


def bin_index(probs: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each probability's bin (0 .. bins-1); 1.0 falls in the last bin."""
    which: np.ndarray = np.clip((np.asarray(probs, dtype=np.float64) * bins).astype(int), 0, bins - 1)
    return which


def ece(labels: np.ndarray, probs: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error of P(atypical) (NaN for no figures)."""
    labels = np.asarray(labels, dtype=np.float64)
    probs = np.asarray(probs, dtype=np.float64)
    if len(labels) == 0:
        return float("nan")
    which = bin_index(probs, bins)
    count = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, labels, bins) - np.bincount(which, probs, bins))
    return float(gap.sum() / count.sum())  # sum over bins of n_b/N * |mean_y - mean_p| = |sum_y - sum_p|/N


def _logit(probs: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probs, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """P(atypical) with the logit divided by `temperature`."""
    scaled: np.ndarray = 1.0 / (1.0 + np.exp(-_logit(probs) / temperature))
    return scaled


def fit_temperature(labels: np.ndarray, probs: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the log-loss of `apply_temperature(probs, T)` on these
    (validation) predictions; 1.0 when they hold a single class (nothing to fit)."""
    labels = np.asarray(labels, dtype=np.float64)
    if len(np.unique(labels)) < 2:
        return 1.0
    z = _logit(probs)

    def loss(log_t: float) -> float:
        s = z / np.exp(log_t)
        return float(np.mean(np.logaddexp(0.0, s) - labels * s))  # log-loss of sigmoid(s)

    best = minimize_scalar(loss, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(best.x))


def prior_threshold(labels: np.ndarray, probs: np.ndarray) -> float:
    """The raw P(atypical) at which a Platt fit of these (validation) predictions equals their
    atypical share; 0.5 where there is nothing to fit (one class, or scores that do not rise with
    the label)."""
    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) < 2:
        return 0.5
    z = _logit(probs)
    fit = LogisticRegression(C=np.inf).fit(z[:, None], labels)  # unpenalised
    slope, intercept = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if slope <= 0:
        return 0.5
    share = float(labels.mean())
    cut = (np.log(share) - np.log1p(-share) - intercept) / slope  # sigmoid(slope*z+b) = share
    return float(1.0 / (1.0 + np.exp(-cut)))
