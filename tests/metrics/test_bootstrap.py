"""Bootstrap intervals: around the point estimate, narrower with more data, wider by slide."""

from __future__ import annotations

import numpy as np

from mitobench.metrics.binary import compute
from mitobench.metrics.bootstrap import bootstrap_ci


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    probs = np.clip(labels * 0.35 + rng.random((3, n)) * 0.65, 0, 1)
    return labels, probs


def test_interval_holds_the_fold_mean_and_repeats_with_the_seed() -> None:
    labels, probs = _data(300)
    thresholds = np.full(3, 0.5)
    ci = bootstrap_ci(labels, probs, thresholds, n_boot=300)
    mean_bacc = np.mean([compute(labels, p, 0.5)["balanced_accuracy"] for p in probs])
    mean_auc = np.mean([compute(labels, p, 0.5)["auroc"] for p in probs])
    assert ci["balanced_accuracy"][0] < mean_bacc < ci["balanced_accuracy"][1]
    assert ci["auroc"][0] < mean_auc < ci["auroc"][1]
    assert ci == bootstrap_ci(labels, probs, thresholds, n_boot=300)


def test_more_figures_give_a_narrower_interval() -> None:
    small = bootstrap_ci(*_data(100), np.full(3, 0.5), n_boot=300)
    large = bootstrap_ci(*_data(1600), np.full(3, 0.5), n_boot=300)
    width = {k: v[1] - v[0] for k, v in small.items()}
    assert all(large[k][1] - large[k][0] < width[k] / 2 for k in width)


def test_resampling_correlated_slides_widens_the_interval() -> None:
    rng = np.random.default_rng(1)
    slides = np.repeat(np.arange(20), 30)
    slide_effect = rng.normal(0, 0.25, 20)[slides]  # figures of one slide err together
    labels = rng.integers(0, 2, len(slides))
    probs = np.clip(0.5 + (labels - 0.5) * 0.3 + slide_effect + rng.normal(0, 0.1, (3, len(slides))), 0, 1)
    by_figure = bootstrap_ci(labels, probs, np.full(3, 0.5), n_boot=400)
    by_slide = bootstrap_ci(labels, probs, np.full(3, 0.5), groups=slides, n_boot=400)
    w = lambda ci: ci["balanced_accuracy"][1] - ci["balanced_accuracy"][0]  # noqa: E731
    assert w(by_slide) > 1.3 * w(by_figure)
