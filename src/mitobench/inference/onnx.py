"""A model as ONNX: the fold ensemble in one graph, with a sidecar of its settings, run by ONNX
Runtime (the optional `onnx` extra) for `predict`, `slide` and `midog`.

The graph takes prepared images (normalised float NCHW at the model's input side) and returns
every fold's P(atypical), shape (N, folds). Preparing them (resize to the input side, normalise)
is the same code as PyTorch's (`models.encoder.prepare`), read from the sidecar
`<model>.onnx.json`: input transform, patch geometry, fold thresholds and the ensemble's.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mitobench.errors import ConfigError
from mitobench.inference.predictor import FoldEnsemble, Predictor
from mitobench.models.encoder import prepare
from mitobench.models.spec import InputTransform
from mitobench.paths import atomic_path, atomic_write_text
from mitobench.progress import NullProgress, Progress
from mitobench.train.model import load_trainable_state

ONNX_FORMAT = "mitobench-onnx/1"
_FIX = "pass a file made by `mitobench export --format onnx` (it writes MODEL.onnx and MODEL.onnx.json)"


class _Ensemble(nn.Module):
    """Every fold model on the same prepared images: (N, folds) probabilities."""

    def __init__(self, models: list[nn.Module]) -> None:
        super().__init__()
        self.models = nn.ModuleList(models)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([torch.sigmoid(m(x).float().reshape(-1)) for m in self.models], dim=1)


def sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


STACK_TRACE = "pkg.torch.onnx.stack_trace"
"""Node metadata the exporter fills with Python stack traces: the exporting machine's file paths
(its checkout, its virtual environment), a quarter of a megabyte for one EfficientNet-Lite0, no
use to the runtime. Dropped, so the file says nothing of where it was made and two machines'
exports of the same weights differ only where the graph does; the module names (name scopes,
class hierarchy) stay for debugging."""


def _drop_stack_traces(path: Path) -> None:
    """Rewrite the ONNX file at `path` without its nodes' stack traces (graph and functions)."""
    import onnx

    model = onnx.load(str(path))
    for node in [*model.graph.node, *(n for f in model.functions for n in f.node)]:
        kept = [p for p in node.metadata_props if p.key != STACK_TRACE]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
    onnx.save(model, str(path))


def export_onnx(predictor: Predictor, target: Path, opset: int = 18) -> Path:
    """Write the fold ensemble of `predictor` as one ONNX graph (fp32, optimised: each BatchNorm
    folded into its Conv, the TF padding's shape arithmetic folded away) and its settings beside
    it. A graph exported from an fp16 bundle (`from_bundle`) holds those fp16 values in fp32."""
    enc = predictor.model.encoder
    assert enc is not None
    folds = sorted(predictor.fold_states)
    models: list[nn.Module] = []
    for k in folds:
        model = copy.deepcopy(predictor.model).float().eval()
        load_trainable_state(model, predictor.fold_states[k])
        models.append(model)
    t = enc.transform
    example = torch.zeros(2, 3, t.size, t.size)
    program = torch.onnx.export(
        _Ensemble(models).eval(),
        (example,),
        input_names=["pixels"],
        output_names=["fold_probs"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=65536)}},
        opset_version=opset,
        dynamo=True,
        verbose=False,
        # Not optional: unoptimised, the graph keeps the TF padding's Shape/Expand/Cast chains and
        # runs 2.5x slower under ONNX Runtime (61 against 147 patches/s for the shipped model,
        # docs/performance.md); storing the folded weights in fp16 instead would round them twice
        # (3.6e-3 from the bundle).
        optimize=True,
    )
    assert program is not None  # dynamo=True always returns the program
    with atomic_path(target) as tmp:
        program.save(str(tmp))
        _drop_stack_traces(tmp)
    meta = {
        "format": ONNX_FORMAT,
        "model": enc.spec.name,
        "mode": predictor.mode,
        "folds": folds,
        "thresholds": {str(k): predictor.thresholds[k] for k in folds},
        "threshold": predictor.threshold,
        "weights_dtype": "float32",
        "transform": t.to_dict(),
        "patch": predictor.patch.to_dict(),
        "run": predictor.meta.get("run", {}),
        "train_config": predictor.meta.get("train_config", {}),
        "teacher": predictor.meta.get("teacher"),
        "figures": predictor.meta.get("figures"),
    }
    atomic_write_text(sidecar(target), json.dumps(meta, indent=1))
    return target


@dataclass
class OnnxPredictor(FoldEnsemble):
    """The ONNX Runtime engine: threshold, patch geometry, `ensemble_probs` and `predict` as
    `Predictor`'s (shared in `FoldEnsemble`)."""

    session: Any
    transform: InputTransform
    folds: list[int]
    thresholds: dict[int, float]
    meta: dict[str, Any]
    batch: int = 64

    def fold_probs(
        self, images: np.ndarray, tta: bool = False, progress: Progress | None = None
    ) -> dict[int, np.ndarray]:
        if tta:
            raise ConfigError(
                "--tta is not available for an ONNX model", "leave out --tta, or pass the bundle"
            )
        progress = progress or NullProgress()
        progress.start("ONNX Runtime", len(images))
        out = []
        for start in range(0, len(images), self.batch):
            chunk = torch.from_numpy(images[start : start + self.batch])
            pixels = prepare(chunk, self.transform).contiguous().numpy()
            out.append(self.session.run(None, {"pixels": pixels})[0])
            progress.advance(len(chunk))
        progress.finish()
        probs = np.concatenate(out) if out else np.zeros((0, len(self.folds)), np.float32)
        return {k: probs[:, i].astype(np.float64) for i, k in enumerate(self.folds)}


def onnx_meta(path: Path) -> dict[str, Any]:
    """The settings an ONNX model was exported with (its sidecar), checked."""
    side = sidecar(path)
    try:
        meta = json.loads(side.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{side}: the ONNX model's settings cannot be read ({exc})", _FIX) from None
    if not isinstance(meta, dict) or meta.get("format") != ONNX_FORMAT:
        raise ConfigError(f"{side}: not the settings of a mitobench ONNX model", _FIX)
    return meta


def from_onnx(path: Path) -> OnnxPredictor:
    """Load an exported ONNX model and its sidecar; needs ONNX Runtime, no run and no download."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(
            f"{path}: running an ONNX model needs ONNX Runtime", "pip install 'mitobench[onnx]'"
        ) from None
    meta = onnx_meta(path)
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own types for a damaged or foreign file
        raise ConfigError(f"{path}: not a readable ONNX model ({type(exc).__name__})", _FIX) from None
    t = meta["transform"]
    transform = InputTransform(t["size"], t["resize"], t["interpolation"], tuple(t["mean"]), tuple(t["std"]))
    thresholds = {int(k): float(v) for k, v in meta["thresholds"].items()}
    return OnnxPredictor(session, transform, [int(k) for k in meta["folds"]], thresholds, meta)
