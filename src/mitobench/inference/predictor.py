"""Fold models of a trained run, ready to score new patches.

One network is built; the folds' trained tensors (full weights, LoRA adapters or a linear head)
are swapped in turn, so five folds cost the memory of one model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file

from mitobench import CLASS_NAMES
from mitobench.data.dataset import Dataset
from mitobench.data.geometry import PatchGeometry
from mitobench.errors import ConfigError
from mitobench.models.builder import build
from mitobench.models.encoder import Encoder
from mitobench.progress import Progress
from mitobench.recipes.config import Mode, TrainConfig
from mitobench.runs.rundir import RunDir
from mitobench.runs.spec import RunSpec, load_run_spec
from mitobench.train.batches import ImageBatches
from mitobench.train.loop import predict_probs
from mitobench.train.model import Classifier, load_trainable_state
from mitobench.train.modes import get_mode
from mitobench.train.precision import device


class FoldEnsemble:
    """What every engine of a fold ensemble shares (PyTorch's `Predictor`, ONNX Runtime's):
    the ensemble's threshold, its patch geometry and the prediction table, all from the
    engine's `fold_probs`, `thresholds` and `meta`."""

    thresholds: dict[int, float]
    meta: dict[str, Any]

    def fold_probs(
        self, images: np.ndarray, tta: bool = False, progress: Progress | None = None
    ) -> dict[int, np.ndarray]:
        raise NotImplementedError

    @property
    def threshold(self) -> float:
        """The ensemble's decision threshold: the mean of the folds' thresholds."""
        return float(np.mean(list(self.thresholds.values())))

    @property
    def patch(self) -> PatchGeometry:
        """The patch side and µm/px the fold models were trained on (new patches are made so)."""
        return PatchGeometry.from_dict(self.meta.get("patch"))

    def ensemble_probs(self, images: np.ndarray, progress: Progress | None = None) -> np.ndarray:
        """The fold ensemble's atypical probability (mean over the folds) of every image."""
        return np.mean(list(self.fold_probs(images, progress=progress).values()), axis=0)

    def predict(
        self, dataset: Dataset, images: np.ndarray, tta: bool = False, progress: Progress | None = None
    ) -> pd.DataFrame:
        """One row per patch: id, ensemble probability, predicted label, and, for an ensemble of
        several fold models, each one's probability (one model's would repeat `probability`)."""
        probs = self.fold_probs(images, tta, progress)
        mean = np.mean(list(probs.values()), axis=0)
        frame = pd.DataFrame({"id": dataset.ids, "probability": np.round(mean, 6)})
        frame["label"] = [CLASS_NAMES[int(p >= self.threshold)] for p in mean]
        if len(probs) > 1:
            for k, p in probs.items():
                frame[f"prob_fold_{k}"] = np.round(p, 6)
        return frame


@dataclass
class Predictor(FoldEnsemble):
    """Fold models of one run, ready to score uint8 patches."""

    model: Classifier
    mode: Mode
    fold_states: dict[int, dict[str, torch.Tensor]]
    thresholds: dict[int, float]
    cfg: TrainConfig
    base_state: dict[str, torch.Tensor] | None
    meta: dict[str, Any]

    def fold_probs(
        self, images: np.ndarray, tta: bool = False, progress: Progress | None = None
    ) -> dict[int, np.ndarray]:
        """Atypical probability of every image under every fold model."""
        dev = device()
        self.model.to(dev)
        enc = self.model.encoder
        assert enc is not None
        cnn = enc.spec.convolutional and self.cfg.channels_last
        if cnn:
            self.model.to(memory_format=torch.channels_last)
        data = ImageBatches(images, np.zeros(len(images), dtype=np.int64), enc, [], cnn, dev)
        out = {}
        for k, state in self.fold_states.items():
            load_trainable_state(self.model, state)
            out[k] = predict_probs(
                self.model,
                data,
                self.cfg.for_testing(),
                dev,
                tta=tta,
                progress=progress,
                description=f"fold {k}" if len(self.fold_states) > 1 else "PyTorch",
            )
        return out


def configured(encoder: Encoder, cfg: TrainConfig) -> Encoder:
    """The encoder with the input transform and pooling its run was trained with."""
    return encoder.configure(cfg.transform_for(encoder.spec), cfg.pooling_for(encoder.spec))


def assemble(
    spec: RunSpec,
    cfg: TrainConfig,
    weights: str | None,
    pretrained: bool,
    base: dict[str, torch.Tensor] | None = None,
) -> tuple[Classifier, dict[str, torch.Tensor] | None]:
    """The run's inference model (and the frozen base weights its folds need, if any)."""
    mode = get_mode(spec.mode)
    encoder = configured(build(spec.model, weights=weights, pretrained=pretrained), cfg)
    if base is not None:
        encoder.network.load_state_dict(base, strict=True)
    elif mode.keeps_base:
        base = {k: v.clone() for k, v in encoder.network.state_dict().items()}
    return mode.inference_model(encoder, spec.options), base


def _folds_to_load(run: RunDir, folds: list[int] | None, complete: bool) -> list[int]:
    """The folds to load: `folds` (each must be finished), else every finished one; with
    `complete`, a run with folds begun but unfinished is refused (a smaller ensemble is not it)."""
    finished = run.finished_folds()
    if folds is not None:
        missing = [k for k in folds if k not in finished]
        if missing:
            raise ConfigError(
                f"{run.path}: fold {missing[0]} is not finished (finished: {finished or 'none'})",
                "name finished folds only: --folds " + ",".join(map(str, finished)),
            )
        return sorted(folds)
    unfinished = run.unfinished_folds() if complete else []
    if unfinished:
        raise ConfigError(
            f"{run.path}: fold(s) {unfinished} are not finished, so a bundle would hold a "
            f"smaller ensemble than the run's",
            "finish the run (rerun its command), or export the finished ones on purpose: --folds "
            + ",".join(map(str, finished)),
        )
    return finished


def _fold_state(run: RunDir, k: int) -> dict:
    path = run.fold(k).best
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a missing or cut file
        raise ConfigError(
            f"{path}: fold {k}'s weights cannot be read ({type(exc).__name__}: {exc})",
            f"delete fold_{k}/ and rerun the run's command to retrain that fold",
        ) from None


def from_run(run_dir: Path, folds: list[int] | None = None, complete: bool = False) -> Predictor:
    """Rebuild the fold models of a finished (or partly finished) run: `folds`, else every
    finished one (`complete`: refuse a run with unfinished folds, as `export` does)."""
    run = RunDir(run_dir)
    spec, cfg = load_run_spec(run)
    folds = _folds_to_load(run, folds, complete)
    if not folds:
        raise ConfigError(f"{run_dir} has no finished fold", "train it first: mitobench train ... --out RUN")
    thresholds = {k: float(run.fold(k).read_done()["threshold"]) for k in folds}
    states = {k: _fold_state(run, k) for k in folds}
    keeps_base = get_mode(spec.mode).keeps_base  # e2e folds carry every weight
    model, base = assemble(spec, cfg, spec.weights, pretrained=keeps_base)
    spec = spec.model_copy(update={"folds": folds})  # the folds this predictor holds
    meta = {
        "run": spec.model_dump(mode="json"),
        "train_config": cfg.model_dump(mode="json"),
        "patch": PatchGeometry.from_dict(run.read_record().get("patch")).to_dict(),
    }
    return Predictor(model, spec.mode, states, thresholds, cfg, base, meta)
