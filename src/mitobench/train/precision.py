"""Device and autocast choice: bf16 on CUDA by default (fp16 makes UNI produce NaN)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: str, dev: torch.device) -> torch.dtype | None:
    """None means full fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    return torch.bfloat16 if dev.type == "cuda" else None


@contextlib.contextmanager
def autocast(dtype: torch.dtype | None, dev: torch.device) -> Iterator[None]:
    if dtype is None:
        yield
    else:
        with torch.autocast(dev.type, dtype=dtype):
            yield
