"""The models shipped inside the package, so `predict`, `slide` and `midog` classify patches with
no training and no network.

Each shipped model is three files in `mitobench/shipped/`: `NAME.safetensors` (the export bundle,
fp16 weights, for PyTorch), `NAME.onnx` with its sidecar `NAME.onnx.json` (the same values in fp32, for
ONNX Runtime) and `NAME.json`, the record of how it was made (recipe command, teachers, machine,
stage times, data fingerprint). `benchmarks/ship_model.py` writes them from a finished run.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from importlib.resources import files
from pathlib import Path
from typing import Any

from mitobench.errors import ConfigError, did_you_mean

DEFAULT_MODEL = "amibr-lite0"
"""What `predict`, `slide` and `midog` use when no model is named."""


class EngineChoice(str, Enum):
    """What runs a model: `auto` is the faster of the two where a model has both forms — ONNX
    Runtime where PyTorch would compute in fp32 (3-3.5x PyTorch fp32 for EfficientNet-Lite0 on a
    2-core Zen 2), PyTorch on a GPU, and on a CPU with native bf16 whichever won a race run once on
    that machine (`engine_race`; docs/performance.md has both sides measured)."""

    auto = "auto"
    pytorch = "pytorch"
    onnx = "onnx"


def shipped_dir() -> Path:
    """The folder of the shipped models (inside the installed package)."""
    return Path(str(files("mitobench") / "shipped"))


@dataclass(frozen=True)
class ShippedModel:
    """A shipped model's files, found by name in `folder` (the package's, or a test's)."""

    name: str
    folder: Path

    @property
    def bundle(self) -> Path:
        return self.folder / f"{self.name}.safetensors"

    @property
    def onnx(self) -> Path:
        return self.folder / f"{self.name}.onnx"

    @property
    def record_path(self) -> Path:
        return self.folder / f"{self.name}.json"

    def record(self) -> dict[str, Any]:
        """How the model was made (`benchmarks/ship_model.py` wrote it)."""
        try:
            return dict(json.loads(self.record_path.read_text()))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{self.record_path}: the shipped model's record cannot be read ({exc})",
                "reinstall mitobench",
            ) from None


def shipped_names() -> list[str]:
    """Names of the models shipped with this installation."""
    folder = shipped_dir()
    return sorted(p.stem for p in folder.glob("*.safetensors")) if folder.is_dir() else []


def shipped(name: str) -> ShippedModel | None:
    """The shipped model called `name`, or None."""
    return ShippedModel(name, shipped_dir()) if name in shipped_names() else None


def require_shipped(name: str) -> ShippedModel:
    """The shipped model called `name`; a user error naming the nearest shipped names otherwise
    (for tools that take only a shipped name, such as `benchmarks/inference_speed.py --shipped`)."""
    ship = shipped(name)
    if ship is None:
        raise _no_such_model(name, "shipped model")
    return ship


def _no_such_model(name: str, kinds: str, others: Sequence[str] = (), then: str = "") -> ConfigError:
    """The one message for a model name that is none of `kinds`: the nearest shipped names (and
    `others`), the shipped list, then `then` (what else the command takes)."""
    ships = shipped_names()
    fix = f"{did_you_mean(name, [*ships, *others])}shipped models: {', '.join(ships) or 'none'}"
    return ConfigError(f"{name}: no such {kinds}", f"{fix}; {then}" if then else fix)


def onnx_runtime_installed() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def pytorch_reduced_precision() -> bool:
    """Whether PyTorch's `precision: auto` would classify in bf16/fp16 here (then it outruns ONNX
    Runtime's fp32)."""
    from mitobench.train.precision import device, resolve

    return resolve("auto", device()).dtype is not None


def auto_uses_onnx(ship: ShippedModel | None = None) -> bool:
    """`--engine auto` for a model with both forms, where ONNX Runtime is installed: ONNX Runtime
    when PyTorch computes in fp32 here; PyTorch on a GPU; on a CPU with native bf16, the faster of
    the two as raced once on this machine for `ship` (`engine_race`; PyTorch when no `ship`)."""
    from mitobench.train.precision import device

    if not onnx_runtime_installed():
        return False
    if not pytorch_reduced_precision():
        return True
    if ship is None or device().type != "cpu":
        return False
    from mitobench.inference.engine_race import auto_engine

    return auto_engine(ship) == "onnx"


def _mistyped_name(path: Path) -> bool:
    """A path that does not exist and reads as a bare name (no folder, no suffix): a mistyped
    model name rather than a missing file, so the message names the models instead."""
    return not path.exists() and path.parent == Path(".") and not path.suffix


def resolve_model(model: str | Path | None, engine: EngineChoice = EngineChoice.auto) -> Path:
    """The file or run folder that classifies: `model` (a shipped model's name, default
    `DEFAULT_MODEL`; a run folder; a bundle; an .onnx) in the form `engine` runs."""
    name = DEFAULT_MODEL if model is None else str(model)
    ship = shipped(name)
    if ship is None and model is None:
        raise ConfigError(
            f"the default model {DEFAULT_MODEL} is not in this installation ({shipped_dir()})",
            "reinstall mitobench, or pass --model (a run folder, bundle or .onnx model)",
        )
    if ship is not None:
        if engine == EngineChoice.onnx and not onnx_runtime_installed():
            raise ConfigError(
                "--engine onnx needs ONNX Runtime", "pip install 'mitobench[onnx]', or leave out --engine"
            )
        use_onnx = engine == EngineChoice.onnx or (engine == EngineChoice.auto and auto_uses_onnx(ship))
        return ship.onnx if use_onnx else ship.bundle
    path = Path(name)
    if _mistyped_name(path):
        raise _no_such_model(
            name,
            "shipped model, run folder or bundle",
            then="else pass a run folder, a .safetensors bundle or an .onnx model",
        )
    is_onnx = path.suffix.lower() == ".onnx"
    if engine == EngineChoice.onnx and not is_onnx:
        raise ConfigError(
            f"{path}: --engine onnx runs an .onnx model",
            f"export it first (mitobench export RUN --format onnx), or leave out --engine; "
            f"shipped models: {', '.join(shipped_names()) or 'none'}",
        )
    if engine == EngineChoice.pytorch and is_onnx:
        raise ConfigError(
            f"{path}: an .onnx model runs with ONNX Runtime only",
            "pass its bundle or run folder for --engine pytorch, or leave out --engine",
        )
    return path


def describe_shipped(name: str) -> dict[str, Any]:
    """`models info NAME` of a shipped model: what its bundle says (settings, fingerprint, test
    figures), where its ONNX form is, and how it was made."""
    from mitobench.inference.bundle import describe_model, model_fingerprint

    ship = ShippedModel(name, shipped_dir())
    return {
        "name": name,
        **describe_model(ship.bundle),
        "onnx": str(ship.onnx),
        "onnx_sha256": model_fingerprint(ship.onnx),
        "made": ship.record(),
    }


def describe_target(target: str) -> dict[str, Any]:
    """`models info TARGET`: a registered model's spec, a shipped model's record, or what a run,
    bundle or .onnx model is. A bare name that is none of these names the nearest known names."""
    from mitobench.inference.bundle import describe_model
    from mitobench.models.registry import get, names

    if target in names():
        return {"name": target, **get(target).to_dict()}
    if shipped(target) is not None:
        return describe_shipped(target)
    path = Path(target)
    if _mistyped_name(path):
        raise _no_such_model(
            target,
            "registered model, shipped model, run folder or bundle",
            names(),
            "`mitobench models list` lists the registered ones; else pass a run folder, a .safetensors "
            "bundle or an .onnx model",
        )
    return describe_model(path)


def ship_run(run_dir: Path, name: str, made: dict[str, Any], folder: Path | None = None) -> ShippedModel:
    """Write a finished run as the shipped model `name`: the bundle (fp16 weights), the ONNX form
    exported from that same bundle (so both engines hold identical weights) and the record `made`
    (how it was made) with both files' fingerprints. A maintainer's step
    (`benchmarks/ship_model.py`); refuses to replace a shipped model silently."""
    from mitobench.inference.bundle import export_run, from_bundle, model_fingerprint
    from mitobench.inference.onnx import export_onnx
    from mitobench.paths import atomic_write_text

    folder = folder or shipped_dir()
    folder.mkdir(parents=True, exist_ok=True)
    bundle, onnx, record = (folder / f"{name}{s}" for s in (".safetensors", ".onnx", ".json"))
    present = [p for p in (bundle, onnx, record) if p.exists()]
    if present:
        raise ConfigError(
            f"{present[0]} exists: a shipped model is replaced only on purpose", "delete it first"
        )
    export_run(run_dir, bundle, half=True, teacher=made.get("teacher"))
    export_onnx(from_bundle(bundle), onnx)  # the bundle's fp16 values, held in fp32
    made = {
        "name": name,
        **made,
        "bundle_sha256": model_fingerprint(bundle),
        "onnx_sha256": model_fingerprint(onnx),
    }
    atomic_write_text(record, json.dumps(made, indent=1))
    return ShippedModel(name, folder)
