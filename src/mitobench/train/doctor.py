"""`mitobench doctor`: this machine's facts and what each packaged recipe will do on it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from mitobench import machine
from mitobench.paths import cache_dir, default_data_root
from mitobench.recipes.config import MODES, PRESETS, train_config
from mitobench.train.modes import get_mode
from mitobench.train.precision import device, inference_batch, resolve
from mitobench.train.precision_race import needs_race


def recipe_plan(dev: torch.device | None = None) -> list[dict[str, Any]]:
    """Per packaged preset and mode: the precision `auto` (or the preset's own) becomes here, and
    the training batch and inference chunk sizes."""
    dev = dev or device()
    rows = []
    for preset in PRESETS:
        for mode in MODES:
            cfg = train_config(mode, preset)  # type: ignore[arg-type]
            size = cfg.side
            train = resolve(cfg.precision, dev, training=True, size=size)
            infer = resolve(cfg.eval_precision, dev)
            rows.append(
                {
                    "preset": preset,
                    "mode": mode,
                    "precision": cfg.precision,
                    "train": "fp32 (a head on embeddings)"
                    if get_mode(mode).on_embeddings
                    else "bf16 or fp32, raced on first training"
                    if needs_race(cfg, dev)
                    else train.name + (" + scaler" if train.scaler else ""),
                    "inference": infer.name,
                    "why": infer.reason,
                    "batch": cfg.batch_size,
                    "inference_chunk": inference_batch(cfg.eval_batch_size, size, dev),
                    "input_size": size,
                }
            )
    return rows


def folder_size(path: Path) -> int | None:
    """Bytes under `path` (None when it does not exist); unreadable entries are skipped."""
    if not path.exists():
        return None
    total = 0
    for root, _, files in os.walk(path, onerror=lambda _: None):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def _hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def report(data_root: Path | None = None) -> dict[str, Any]:
    """Everything the doctor shows, as data (the CLI prints it; `--json` dumps it)."""
    places = {
        "data": data_root or default_data_root(),
        "cache": cache_dir(),
        "weights (Hugging Face cache)": _hub_cache(),
    }
    return {
        "machine": machine.describe(),
        "label": machine.label(),
        "device": str(device()),
        "threads_env": os.environ.get(machine.THREADS_ENV, ""),
        "places": [{"what": k, "path": str(v), "bytes": folder_size(v)} for k, v in places.items()],
        "recipes": recipe_plan(),
    }
