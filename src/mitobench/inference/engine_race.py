"""`--engine auto` on a CPU with native bf16: which engine is faster is measured here, once, not
assumed.

There PyTorch computes in bf16 and ONNX Runtime in fp32, and neither wins everywhere: PyTorch bf16
led by 1-28 % on two AMD generations (Zen 4, Zen 5) and trailed by 17-21 % on an AMX-BF16 Xeon
(docs/performance.md). So the shipped model's two forms race on synthetic patches of its own
geometry, and the verdict is kept in the cache, keyed by the processor, both libraries' versions and
both files' fingerprints: the same machine then runs the same engine every time, and its
probabilities do not change from call to call with the timing noise.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from mitobench import machine
from mitobench.verdicts import kept, verdict_file


class BothForms(Protocol):
    """A model with a bundle and an ONNX form: `shipped.ShippedModel` (which imports this module,
    so it is named here by its shape)."""

    @property
    def name(self) -> str: ...
    @property
    def bundle(self) -> Path: ...
    @property
    def onnx(self) -> Path: ...


RACE_PATCHES = (16, 80)
"""Each engine classifies a small and a large pass; the difference of the two times is its
per-patch cost without its fixed per-call cost (PyTorch folds BatchNorm on every call: 0.15 s, a
third of a 64-patch pass on the AMX Xeon), so the race ranks the engines as a folder of patches
sees them."""
RACE_ROUNDS = 2
"""Timed rounds after one warm-up, engines and sizes alternating; the medians count."""


def verdict_path(ship: BothForms) -> Path:
    """Where this machine's verdict for `ship` is kept: one file per processor, library versions
    and pair of model files (a new torch, ONNX Runtime or model races again)."""
    import onnxruntime
    import torch

    from mitobench.inference.bundle import model_fingerprint

    key = [
        machine.label(),
        torch.__version__,
        onnxruntime.__version__,
        model_fingerprint(ship.bundle),
        model_fingerprint(ship.onnx),
    ]
    return verdict_file("engine-race", ship.name, key)


def faster(seconds: dict[str, float]) -> str:
    """The engine with the smaller cost per patch; PyTorch on a tie (it needs no extra package)."""
    return min(("pytorch", "onnx"), key=lambda engine: seconds[engine])


def _seconds_per_patch(
    passes: dict[str, Callable[[np.ndarray], Any]], images: np.ndarray
) -> dict[str, float]:
    """Each engine's seconds per patch, from the medians of its small and large passes."""
    small, large = RACE_PATCHES
    times: dict[tuple[str, int], list[float]] = {(name, n): [] for name in passes for n in RACE_PATCHES}
    for run in passes.values():  # warm-up: first-call allocations, thread pools, oneDNN kernels
        run(images[:small])
    for _ in range(RACE_ROUNDS):
        for (name, n), spent in times.items():
            started = time.perf_counter()
            passes[name](images[:n])
            spent.append(time.perf_counter() - started)
    median = {key: statistics.median(t) for key, t in times.items()}
    return {name: max(median[name, large] - median[name, small], 1e-9) / (large - small) for name in passes}


def race(ship: BothForms) -> dict[str, Any]:
    """Time both forms of `ship` on the same synthetic patches (a CNN's speed does not depend on
    the pixels); the record says what was measured, where and with what."""
    from mitobench.data.geometry import PatchGeometry
    from mitobench.inference.bundle import from_bundle
    from mitobench.inference.onnx import from_onnx

    torch_model, onnx_model = from_bundle(ship.bundle), from_onnx(ship.onnx)
    side = PatchGeometry.from_dict(torch_model.meta.get("patch")).size
    images = np.random.default_rng(0).integers(0, 256, (max(RACE_PATCHES), side, side, 3), dtype=np.uint8)
    seconds = _seconds_per_patch({"pytorch": torch_model.fold_probs, "onnx": onnx_model.fold_probs}, images)
    return {
        "engine": faster(seconds),
        "patches_per_second": {k: round(1 / s, 1) for k, s in seconds.items()},
        "what": f"per patch, from the medians of {RACE_ROUNDS} passes of {RACE_PATCHES[0]} and "
        f"{RACE_PATCHES[1]} synthetic {side} px patches after a warm-up",
        "machine": machine.label(),
        "model": ship.name,
        "measured": time.time(),
    }


def auto_engine(ship: BothForms) -> str:
    """'pytorch' or 'onnx': this machine's kept verdict for `ship`, raced and kept on first use
    (`verdicts.kept`: an unreadable verdict is raced again and replaced; a cache that cannot be
    written does not stop the classification, the race then runs on every call)."""
    verdict = kept(
        lambda: verdict_path(ship),
        lambda v: v["engine"] in ("pytorch", "onnx"),
        lambda: race(ship),
    )
    return verdict["engine"]
