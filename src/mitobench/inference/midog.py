"""MIDOG 2025 Track 2 container I/O: every TIFF stack in the input folder, classified page by page.

Reads `INPUT/images/stacked-histopathology-roi-cropouts/*.tif[f]` (up to 16 pages of 128x128 RGB,
one mitotic figure per page) and writes `OUTPUT/multiple-mitotic-figure-classification.json`: a
list, in page order (stacks in file-name order), of `{"class": "atypical" | "normal",
"confidence": P(atypical)}` — the confidence is always P(atypical), as a float.
"""

from __future__ import annotations

import json
from pathlib import Path

from mitobench import CLASS_NAMES
from mitobench.data.stacks import STACK_SUFFIXES, read_stack
from mitobench.errors import ConfigError, DataError
from mitobench.inference.bundle import load_model
from mitobench.inference.shipped import resolve_model, shipped
from mitobench.paths import TMP_NAME_EXTRA, atomic_write_text, require_folder, require_short_enough
from mitobench.progress import NullProgress, Progress

INPUT = Path("/input")
OUTPUT = Path("/output")
MODEL = Path("/opt/ml/model")
"""Where the challenge puts a container's own model files."""
STACKS = Path("images") / "stacked-histopathology-roi-cropouts"
RESULT = "multiple-mitotic-figure-classification.json"


def model_path(path: Path) -> Path:
    """The bundle (or run) at `path`: itself, or the one `.safetensors` bundle in a folder."""
    if path.is_file() or (path / "run.json").is_file():
        return path
    bundles = sorted(path.glob("*.safetensors")) if path.is_dir() else []
    if len(bundles) != 1:
        found = "no bundle" if not bundles else f"{len(bundles)} bundles"
        raise ConfigError(
            f"{path}: {found} (a .safetensors file made by `mitobench export`)", "pass --model FILE"
        )
    return bundles[0]


def classify_stacks(
    input_dir: Path = INPUT,
    output_dir: Path = OUTPUT,
    model: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Write the challenge's output JSON; returns its path. `model`: a bundle, a folder holding
    one (the challenge's /opt/ml/model), or a shipped model's name (None: the default one)."""
    progress = progress or NullProgress()
    folder = input_dir / STACKS
    stacks = (
        sorted(p for p in folder.glob("*") if p.suffix.lower() in STACK_SUFFIXES) if folder.is_dir() else []
    )
    if not stacks:
        raise DataError(
            f"{folder}: no TIFF stacks (*.tif, *.tiff) to classify",
            "check --input (the folder holding images/)",
        )
    require_folder(output_dir, "the output folder (--output)", "pass a writable folder: --output DIR")
    target = output_dir / RESULT
    require_short_enough(target, "the result file", "use a shorter --output folder", extra=TMP_NAME_EXTRA)
    if target.is_dir():
        raise DataError(f"{target} is a folder; the result file goes there", f"remove the folder {target}")
    named = model is None or shipped(str(model)) is not None
    predictor = load_model(resolve_model(model) if named else model_path(Path(str(model))))
    results = []
    progress.start("classifying stacks", len(stacks))
    for stack in stacks:
        probs = predictor.ensemble_probs(read_stack(stack))
        results += [
            {"class": CLASS_NAMES[int(p >= predictor.threshold)].lower(), "confidence": float(p)}
            for p in probs
        ]
        progress.advance()
    progress.finish()
    atomic_write_text(target, json.dumps(results, indent=1))
    return target
