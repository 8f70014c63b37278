"""Using trained fold models on new patches: from a run directory or an exported bundle.

One network is built; the folds' trained tensors (full weights, LoRA adapters or a linear head)
are swapped in turn, so five folds cost the memory of one model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from mitobench import CLASS_NAMES
from mitobench.data.dataset import Dataset
from mitobench.errors import ConfigError
from mitobench.models.builder import build
from mitobench.models.encoder import Encoder
from mitobench.models.registry import get
from mitobench.paths import atomic_path
from mitobench.progress import Progress
from mitobench.train.batches import ImageBatches
from mitobench.train.config import LoraConfig, Mode, TrainConfig
from mitobench.train.loop import BEST, predict_probs
from mitobench.train.model import Classifier, load_trainable_state
from mitobench.train.precision import device

BUNDLE_FORMAT = "mitobench-bundle/1"


@dataclass
class Predictor:
    """Fold models of one run, ready to score uint8 patches."""

    model: Classifier
    mode: Mode
    fold_states: dict[int, dict[str, torch.Tensor]]
    thresholds: dict[int, float]
    cfg: TrainConfig
    base_state: dict[str, torch.Tensor] | None
    meta: dict[str, object]

    @property
    def threshold(self) -> float:
        """The ensemble's decision threshold: the mean of the folds' thresholds."""
        return float(np.mean(list(self.thresholds.values())))

    def fold_probs(
        self, images: np.ndarray, tta: bool = False, progress: Progress | None = None
    ) -> dict[int, np.ndarray]:
        """Atypical probability of every image under every fold model."""
        dev = device()
        self.model.to(dev)
        enc = self.model.encoder
        assert enc is not None
        cnn = enc.spec.pooling.value == "pooled" and self.cfg.channels_last
        if cnn:
            self.model.to(memory_format=torch.channels_last)
        data = ImageBatches(images, np.zeros(len(images), dtype=np.int64), enc, [], cnn, dev)
        out = {}
        for k, state in self.fold_states.items():
            load_trainable_state(self.model, state)
            out[k] = predict_probs(
                self.model, data, self.cfg, dev, tta=tta, progress=progress, description=f"fold {k}"
            )
        return out

    def predict(
        self, dataset: Dataset, images: np.ndarray, tta: bool = False, progress: Progress | None = None
    ) -> pd.DataFrame:
        """One row per patch: id, ensemble probability, predicted label, and each fold's probability."""
        probs = self.fold_probs(images, tta, progress)
        mean = np.mean(list(probs.values()), axis=0)
        frame = pd.DataFrame({"id": dataset.ids, "probability": np.round(mean, 6)})
        frame["label"] = [CLASS_NAMES[int(p >= self.threshold)] for p in mean]
        for k, p in probs.items():
            frame[f"prob_fold_{k}"] = np.round(p, 6)
        return frame


def from_run(run_dir: Path) -> Predictor:
    """Rebuild the fold models of a finished (or partly finished) run."""
    from mitobench.train.run import load_run_spec

    spec, cfg = load_run_spec(run_dir)
    folds = sorted(int(p.parent.name.split("_")[1]) for p in run_dir.glob("fold_*/done.json"))
    if not folds:
        raise ConfigError(f"{run_dir} has no finished fold", "train it first: mitobench train ... --out RUN")
    thresholds = {
        k: float(json.loads((run_dir / f"fold_{k}" / "done.json").read_text())["threshold"]) for k in folds
    }
    states = {k: load_file(str(run_dir / f"fold_{k}" / BEST)) for k in folds}
    pretrained = spec.mode != "e2e"  # e2e folds carry every weight; the others need the frozen base
    encoder = _configured(build(spec.model, weights=spec.weights, pretrained=pretrained), cfg)
    base = {k: v.clone() for k, v in encoder.network.state_dict().items()} if pretrained else None
    model = _assemble(encoder, spec.mode, spec.lora)
    meta = {"run": spec.model_dump(mode="json"), "train_config": cfg.model_dump(mode="json")}
    return Predictor(model, spec.mode, states, thresholds, cfg, base, meta)


def _configured(encoder: Encoder, cfg: TrainConfig) -> Encoder:
    """The encoder with the input transform and pooling its run was trained with."""
    return encoder.configure(cfg.transform_for(encoder.spec), cfg.pooling_for(encoder.spec))


def _assemble(encoder: Encoder, mode: Mode, lora: LoraConfig) -> Classifier:
    if mode == "lora":
        from mitobench.train.lora import apply_lora

        apply_lora(encoder, lora)
    return Classifier(encoder, encoder.embed_dim)


def export_bundle(predictor: Predictor, target: Path) -> Path:
    """One safetensors file: every fold's tensors, the frozen base (probe/LoRA) and the metadata."""
    tensors: dict[str, torch.Tensor] = {}
    for k, state in predictor.fold_states.items():
        tensors.update({f"fold{k}.{name}": t.contiguous() for name, t in state.items()})
    if predictor.base_state is not None:
        tensors.update({f"base.{name}": t.contiguous() for name, t in predictor.base_state.items()})
    enc = predictor.model.encoder
    assert enc is not None
    meta = {
        "format": BUNDLE_FORMAT,
        "model": enc.spec.name,
        "model_spec": enc.spec.to_dict(),
        "mode": predictor.mode,
        "thresholds": {str(k): v for k, v in predictor.thresholds.items()},
        "threshold": predictor.threshold,
        "transform": enc.transform.to_dict(),
        "pooling": enc.pooling.value,
        "weights_origin": enc.weights_origin,
        **predictor.meta,
    }
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={"mitobench": json.dumps(meta)})
    return target


def from_bundle(path: Path) -> Predictor:
    """Load an exported bundle; needs no training run and no download."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("mitobench", "{}"))
            keys = list(fh.keys())
            tensors = {k: fh.get_tensor(k) for k in keys}
    except Exception as exc:  # missing, truncated or foreign file
        raise ConfigError(
            f"{path}: not a readable mitobench bundle ({exc})", "pass a file made by `mitobench export`"
        ) from None
    if meta.get("format") != BUNDLE_FORMAT:
        raise ConfigError(f"{path}: not a mitobench bundle", "pass a file made by `mitobench export`")
    spec = get(str(meta["model"]))
    from mitobench.train.run import saved_settings

    cfg = saved_settings(meta["run"], meta["train_config"], str(path))[1]
    run = meta["run"]
    mode = run["mode"]
    encoder = _configured(build(spec, pretrained=False), cfg)
    base = {k[len("base.") :]: v for k, v in tensors.items() if k.startswith("base.")} or None
    if base is not None:
        encoder.network.load_state_dict(base, strict=True)
    model = _assemble(encoder, mode, LoraConfig.model_validate(run.get("lora", {})))
    folds = sorted({int(k.split(".", 1)[0][4:]) for k in keys if k.startswith("fold")})
    states = {
        f: {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"fold{f}.")} for f in folds
    }
    thresholds = {int(k): float(v) for k, v in meta["thresholds"].items()}
    return Predictor(
        model, mode, states, thresholds, cfg, base, {"run": run, "train_config": meta["train_config"]}
    )
