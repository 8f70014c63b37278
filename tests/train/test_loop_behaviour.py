"""What the training loop does under the paper's recipe, observed rather than configured.

Each test fails under one mutation of the loop that leaves every configuration pin green: a
sampler that stops balancing the classes, a plateau scheduler that minimises, early stopping one
epoch late, the last epoch's weights kept instead of the best's. Validation scores are scripted
(the loop's `_score` replaced), so each test states the sequence it reacts to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mitobench.recipes.config import train_config
from mitobench.runs.rundir import FoldDir
from mitobench.train import loop
from mitobench.train.batches import EmbeddingBatches
from mitobench.train.model import Classifier, trainable_state


class Recording(EmbeddingBatches):
    """Embeddings that remember which rows the training loop drew (calls with a generator)."""

    def __init__(self, x: np.ndarray, labels: np.ndarray) -> None:
        super().__init__(x, labels)
        self.drawn: list[np.ndarray] = []

    def get(self, idx, g=None, dihedral_code=None):
        if g is not None:
            self.drawn.append(np.asarray(idx).copy())
        return super().get(idx, g, dihedral_code)


def _data(n: int, positives: int) -> tuple[Recording, EmbeddingBatches]:
    rng = np.random.default_rng(0)
    labels = (np.arange(n) < positives).astype(np.int64)
    x = (rng.normal(size=(n, 4)) + labels[:, None]).astype(np.float32)
    return Recording(x, labels), EmbeddingBatches(x[::4], labels[::4])


def _scripted(monkeypatch: pytest.MonkeyPatch, scores: list[float], model: Classifier) -> list[dict]:
    """Replace the validation score by `scores`, epoch by epoch; returns the weights each epoch
    was scored with."""
    seen: list[dict] = []
    queue = list(scores)

    def fake(labels, probs, cfg):
        seen.append({k: v.clone() for k, v in trainable_state(model).items()})
        return queue.pop(0), 0.5

    monkeypatch.setattr(loop, "_score", fake)
    return seen


def _fit(tmp_path: Path, model: Classifier, train, val, mode: str = "e2e", **settings) -> loop.FitResult:
    cfg = train_config(mode, "paper", settings)  # type: ignore[arg-type]
    return loop.fit(model, loop.FitContext(train, val, cfg, FoldDir(tmp_path, 0), torch.device("cpu")))


def test_the_sampler_draws_both_classes_equally(tmp_path: Path) -> None:
    """The paper's WeightedRandomSampler: one atypical figure in five in the data, about one in two
    drawn, in every epoch (a uniform sampler would draw 0.2)."""
    train, val = _data(400, 80)
    torch.manual_seed(0)
    _fit(tmp_path, Classifier(None, 4), train, val, max_epochs=2)
    per_epoch = np.split(np.concatenate(train.drawn), 2)
    for drawn in per_epoch:
        assert len(drawn) == 400  # an epoch draws as many figures as the training set holds
        share = train.labels[drawn].mean()
        assert 0.44 < share < 0.56, share  # binomial SD 0.025 around 0.5


def test_the_plateau_scheduler_halves_the_rate_only_when_the_score_stops_rising(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ReduceLROnPlateau on validation balanced accuracy, maximised, patience 3, factor 0.5: a
    rising score keeps the rate; a flat one halves it after the fourth epoch without a gain."""
    train, val = _data(64, 32)
    model = Classifier(None, 4)
    _scripted(monkeypatch, [0.1 * k for k in range(1, 9)], model)
    rising = _fit(tmp_path / "rising", model, train, val, max_epochs=8)
    assert [h["lr"] for h in rising.history] == [5e-5] * 8

    model = Classifier(None, 4)
    _scripted(monkeypatch, [0.5] * 8, model)
    flat = _fit(tmp_path / "flat", model, train, val, max_epochs=8, early_stopping_patience=None)
    assert [h["lr"] for h in flat.history] == [5e-5] * 4 + [2.5e-5] * 4


@pytest.mark.parametrize(("mode", "patience"), [("e2e", 15), ("lora", 10)])
def test_early_stopping_stops_after_patience_epochs_without_a_gain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, patience: int
) -> None:
    """The best score at epoch 2, never beaten: training stops after epoch 2 + patience (the
    scripts' patience, 15, LoRA 10), not one epoch later, and keeps epoch 2."""
    train, val = _data(64, 32)
    model = Classifier(None, 4)
    _scripted(monkeypatch, [0.6, 0.7] + [0.5] * 60, model)
    result = _fit(tmp_path, model, train, val, mode=mode)
    assert result.best_epoch == 2 and result.best_score == 0.7
    assert result.epochs_run == 2 + patience == len(result.history)


def test_the_checkpoint_kept_is_the_best_epochs_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scores 0.5, 0.9, 0.6, 0.7: the fold keeps (and the model ends with) epoch 2's weights."""
    train, val = _data(64, 32)
    torch.manual_seed(0)
    model = Classifier(None, 4)
    seen = _scripted(monkeypatch, [0.5, 0.9, 0.6, 0.7], model)
    result = _fit(tmp_path, model, train, val, max_epochs=4)
    assert result.best_epoch == 2 and result.epochs_run == 4
    kept = load_file(str(FoldDir(tmp_path, 0).best))
    assert not torch.equal(seen[1]["head.weight"], seen[3]["head.weight"])  # the epochs differ
    for name, weights in seen[1].items():
        torch.testing.assert_close(kept[name], weights, rtol=0, atol=0)
        torch.testing.assert_close(trainable_state(model)[name], weights, rtol=0, atol=0)


def test_mixup_mixes_images_and_targets_by_one_beta_draw() -> None:
    """Each row is λ·itself + (1 − λ)·its partner, images and targets with the same λ and partner;
    λ follows Beta(α, α) (a Kolmogorov-Smirnov test against scipy's distribution). One-hot rows
    make a mixed row show its own weight and its partner."""
    from scipy import stats

    g = torch.Generator().manual_seed(0)
    x, y = torch.eye(8, dtype=torch.float64), torch.tensor([0, 1, 1 / 3, 2 / 3, 0.1, 0.9, 0.25, 0.6])
    lams = []
    for _ in range(400):
        mx, my = loop.mixup(x, y, 0.2, g)
        lam = mx.diagonal()
        partner = (mx - torch.diag(lam)).argmax(dim=1)
        moved = lam < 1 - 1e-9  # rows mixed with another row
        partner[~moved] = torch.arange(8)[~moved]
        weight = float(lam[moved][0]) if moved.any() else 1.0
        assert torch.allclose(lam[moved], torch.tensor(weight, dtype=lam.dtype))  # one λ a batch
        assert sorted(partner.tolist()) == list(range(8))  # a permutation
        mixed = weight * y.double() + (1 - weight) * y.double()[partner]
        assert torch.allclose(my.double(), mixed, atol=1e-6)
        lams.append(weight)
    assert stats.kstest(lams, stats.beta(0.2, 0.2).cdf).pvalue > 0.01


def test_mixup_keeps_a_channels_last_batch_channels_last() -> None:
    """The loop prepares channels-last batches (`channels_last`); mixing must not undo that."""
    x = torch.randn(4, 3, 8, 8).contiguous(memory_format=torch.channels_last)
    mixed, _ = loop.mixup(x, torch.rand(4), 0.4, torch.Generator().manual_seed(1))
    assert mixed.is_contiguous(memory_format=torch.channels_last)
