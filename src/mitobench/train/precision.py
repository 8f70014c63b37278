"""Device and autocast choice for the `precision` setting (fp32 unless a recipe says otherwise)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: str, dev: torch.device) -> torch.dtype | None:
    """The autocast dtype on `dev`; None means full fp32.

    `fp16` is CUDA-only, as the scripts' `torch.autocast(device_type="cuda", dtype=float16)`,
    which does nothing off CUDA; `auto` is bf16 on CUDA (fp16 training can make UNI's loss NaN).
    """
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        return torch.float16 if dev.type == "cuda" else None
    if precision == "auto":
        return torch.bfloat16 if dev.type == "cuda" else None
    return None


@contextlib.contextmanager
def autocast(dtype: torch.dtype | None, dev: torch.device) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast(dev.type, dtype=dtype):
            yield


CPU_BATCH_PIXELS = 32 * 224 * 224
"""On a CPU, inference chunks stay under this many input pixels so activations stay in cache
(EfficientNet-Lite0, bf16, 224 px on a 2-core EPYC: batch 32 ran 150-176 img/s, 64 ran 133, 128 ran 116)."""


def inference_batch(requested: int, input_size: int, dev: torch.device) -> int:
    """The chunk size for inference: as requested on a GPU, capped by CPU_BATCH_PIXELS on a CPU."""
    if dev.type != "cpu":
        return requested
    return max(1, min(requested, CPU_BATCH_PIXELS // (input_size * input_size)))
