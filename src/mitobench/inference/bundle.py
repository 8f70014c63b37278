"""The export bundle: one safetensors file holding every fold's tensors, the frozen base weights
(probe / LoRA) and the settings to rebuild the model, so prediction needs no run and no download."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mitobench.data.manifest import sha256_files
from mitobench.errors import ConfigError
from mitobench.inference.onnx import OnnxPredictor, export_onnx, from_onnx, onnx_meta, sidecar
from mitobench.inference.predictor import Predictor, assemble, from_run
from mitobench.paths import atomic_path
from mitobench.runs.rundir import RunDir
from mitobench.runs.spec import saved_settings

BUNDLE_FORMAT = "mitobench-bundle/2"
"""2: the input transform and pooling follow the run's recipe (format 1 bundles are refused)."""
_FIX = "pass a file made by `mitobench export` (this version)"


def weights_origin(predictor: Predictor) -> str:
    """Where the bundle's weights come from: the folds were trained by mitobench; the frozen base
    (probe, LoRA) is the encoder's own weights, an end-to-end model started from its pretrained ones."""
    enc = predictor.model.encoder
    assert enc is not None
    run = predictor.meta.get("run", {})
    folds = ", ".join(str(k) for k in sorted(predictor.fold_states))
    trained = (
        f"fold weights ({folds}) trained by mitobench, mode {predictor.mode}, preset {run.get('preset')}"
    )
    if predictor.base_state is not None:
        return f"{trained}, on the frozen base {enc.weights_origin}"
    start = run.get("weights") or (
        f"{enc.spec.name}'s pretrained weights" if enc.spec.pretrained else "random init"
    )
    return f"{trained}, starting from {start}"


SETTINGS = ("run", "train_config", "thresholds")
"""What a bundle's metadata must hold to rebuild its model."""


def checksum(tensors: dict[str, torch.Tensor], meta: dict[str, object]) -> str:
    """sha256 of every tensor (name, dtype, shape, bytes, in name order) and of the settings, so
    a damaged or edited bundle is told apart from the one `export` wrote."""
    h = hashlib.sha256(json.dumps({k: v for k, v in meta.items() if k != "sha256"}, sort_keys=True).encode())
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def _check_states(model: torch.nn.Module, states: dict[int, dict[str, torch.Tensor]], path: Path) -> None:
    """Each fold's tensors fit the model exactly: every trainable parameter present, nothing the
    model lacks, no shape different (a partial load would predict with untrained weights)."""
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    trained = [n for n, p in model.named_parameters() if p.requires_grad]
    name = model.encoder.spec.name
    for fold, state in states.items():
        problems = [
            ("lacks", sorted(set(trained) - set(state))),
            ("has tensors the model does not:", sorted(set(state) - set(shapes))),
        ]
        for what, names in problems:
            if names:
                raise ConfigError(
                    f"{path}: fold {fold} {what} {names[0]} ({len(names)} in all) for {name}", _FIX
                )
        for k, t in state.items():
            if tuple(t.shape) != shapes[k]:
                raise ConfigError(
                    f"{path}: fold {fold}'s {k} has shape {list(t.shape)}, the model's {list(shapes[k])}",
                    _FIX,
                )


def _stored(t: torch.Tensor, half: bool) -> torch.Tensor:
    return (t.half() if half and t.is_floating_point() else t).contiguous()


def export_bundle(predictor: Predictor, target: Path, half: bool = False) -> Path:
    """Write `predictor` as one safetensors file (atomically); `half` stores floating tensors as
    fp16 (half the size; loaded back into the fp32 model, so it computes in fp32 all the same)."""
    tensors: dict[str, torch.Tensor] = {}
    for k, state in predictor.fold_states.items():
        tensors.update({f"fold{k}.{name}": _stored(t, half) for name, t in state.items()})
    if predictor.base_state is not None:
        tensors.update({f"base.{name}": _stored(t, half) for name, t in predictor.base_state.items()})
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
        "weights_origin": weights_origin(predictor),
        "weights_dtype": "float16" if half else "as trained",
        **predictor.meta,
    }
    meta["sha256"] = checksum(tensors, meta)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata={"mitobench": json.dumps(meta)})
    return target


def export_run(
    run_dir: Path,
    target: Path,
    folds: list[int] | None = None,
    onnx: bool = False,
    half: bool = False,
    teacher: dict[str, Any] | None = None,
) -> Predictor:
    """Export a finished run's fold models (a bundle, fp16 weights if `half`, or ONNX) with what
    `models info` shows of it: the teacher it was distilled from (as the run records it, unless
    `teacher` says it otherwise, e.g. without the maker's absolute path) and its test-set figures
    (read here, not on every load). Returns the exported fold models."""
    predictor = from_run(run_dir, folds, complete=True)
    run = RunDir(run_dir)
    if teacher:  # one name for the teacher throughout the export, settings included
        predictor.meta = with_teacher_named(predictor.meta, teacher["run"])
    teacher = teacher or run.read_record().get("teacher")
    predictor.meta |= {"teacher": teacher, "figures": run.test_figures()}
    if onnx:
        export_onnx(predictor, target)
    else:
        export_bundle(predictor, target, half=half)
    return predictor


def with_teacher_named(meta: dict[str, Any], name: str) -> dict[str, Any]:
    """`meta` with the teacher's run named `name` in the run spec's and the training settings'
    `teacher` (the run records the folder it trained from, e.g. the maker's absolute path; that
    is only a name here: a bundle never reads its teacher)."""
    run = dict(meta["run"])
    if run.get("train", {}).get("teacher"):
        run["train"] = {**run["train"], "teacher": name}
    cfg = meta["train_config"]
    if cfg.get("teacher"):
        cfg = {**cfg, "teacher": name}
    return {**meta, "run": run, "train_config": cfg}


def from_bundle(path: Path) -> Predictor:
    """Load an exported bundle; needs no training run and no download."""
    meta = _bundle_meta(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except Exception as exc:  # truncated tensors after a readable header
        raise ConfigError(f"{path}: not a readable mitobench bundle ({exc})", _FIX) from None
    absent = [k for k in SETTINGS if k not in meta]
    if absent:
        raise ConfigError(f"{path}: the bundle lacks its settings ({', '.join(absent)})", _FIX)
    if "sha256" in meta and checksum(tensors, meta) != meta["sha256"]:
        raise ConfigError(
            f"{path}: the bundle's tensors or settings do not match its checksum (damaged or edited)", _FIX
        )
    spec, cfg = saved_settings(meta["run"], meta["train_config"], str(path))
    base = {k[len("base.") :]: v for k, v in tensors.items() if k.startswith("base.")} or None
    model, base = assemble(spec, cfg, None, pretrained=False, base=base)
    folds = sorted({int(k.split(".", 1)[0][4:]) for k in tensors if k.startswith("fold")})
    states = {
        f: {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"fold{f}.")} for f in folds
    }
    if not states:
        raise ConfigError(f"{path}: the bundle holds no fold weights", _FIX)
    _check_states(model, states, path)
    thresholds = {int(k): float(v) for k, v in meta["thresholds"].items()}
    meta_out = {k: meta.get(k) for k in ("run", "train_config", "patch", "teacher", "figures")}
    return Predictor(model, spec.mode, states, thresholds, cfg, base, meta_out)


Engine = Predictor | OnnxPredictor
"""What classifies patches: the PyTorch fold models, or the ONNX Runtime graph."""


def load_model(path: Path) -> Engine:
    """A run directory, an exported bundle or an exported ONNX model, whichever `path` is."""
    if path.is_dir():
        return from_run(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such run directory or bundle",
            "pass a run folder, a .safetensors bundle or an .onnx model",
        )
    if path.suffix.lower() == ".onnx":
        return from_onnx(path)
    return from_bundle(path)


def describe_model(path: Path) -> dict[str, Any]:
    """What a run, bundle or ONNX model is, read from its records without building it: `models
    info`. The fingerprint is the one `slide` records; the figures are the run's test sets'."""
    if path.is_dir():
        run = RunDir(path)
        if not run.has_record():
            raise ConfigError(
                f"{path}: not a mitobench run (no run.json)", "pass a run folder, a bundle or an .onnx model"
            )
        record = run.read_record()
        meta: dict[str, Any] = {
            "format": "run",
            **record,
            "run": record.get("spec", {}),
            "figures": run.test_figures(),
        }
        meta["folds"] = run.finished_folds()
        meta["thresholds"] = {str(k): run.fold(k).read_done()["threshold"] for k in meta["folds"]}
    elif path.suffix.lower() == ".onnx":
        meta = onnx_meta(path)
    elif path.is_file():
        meta = _bundle_meta(path)
    else:
        raise ConfigError(
            f"{path}: no such run directory or bundle",
            "pass a run folder, a .safetensors bundle or an .onnx model",
        )
    run = meta.get("run", {})
    thresholds = meta.get("thresholds", {})
    return {
        "path": str(path.resolve()),
        "format": meta.get("format"),
        "sha256": model_fingerprint(path),
        "model": run.get("model", meta.get("model")),
        "mode": run.get("mode", meta.get("mode")),
        "preset": run.get("preset"),
        "trained_on": run.get("train_data"),
        "folds": sorted(int(k) for k in thresholds) or meta.get("folds"),
        "threshold": meta.get("threshold", float(np.mean(list(thresholds.values()))) if thresholds else None),
        "patch": meta.get("patch"),
        "teacher": meta.get("teacher"),
        "figures": meta.get("figures") or {},
    }


def _bundle_meta(path: Path) -> dict[str, Any]:
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta: dict[str, Any] = json.loads((fh.metadata() or {}).get("mitobench", "{}"))
    except Exception as exc:  # missing, truncated or foreign file
        raise ConfigError(f"{path}: not a readable mitobench bundle ({exc})", _FIX) from None
    if meta.get("format") != BUNDLE_FORMAT:
        raise ConfigError(f"{path}: not a {BUNDLE_FORMAT} bundle (format {meta.get('format', 'none')})", _FIX)
    return meta


def model_fingerprint(path: Path) -> str:
    """sha256 of what the predictions depend on: the bundle file, or a run's settings and fold weights."""
    if path.is_file():
        files = [path, sidecar(path)] if path.suffix.lower() == ".onnx" else [path]
    else:
        files = [path / "run.json", *sorted(path.glob("fold_*/best.safetensors"))]
    return sha256_files(files)
