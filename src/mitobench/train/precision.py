"""Which device, autocast dtype and gradient scaler a `precision` setting means on this hardware.

`auto` (every packaged preset but `paper`) is decided by `choose`, one table: on a CPU bf16 only
where the processor executes it natively (AVX-512 BF16, AMX, Arm BF16; elsewhere oneDNN emulates
it 11-15x slower than fp32, docs/performance.md), else fp32; on CUDA bf16 where the device has it
(compute capability 8.0+), else fp16 with a gradient scaler for training. Where it says bf16 for
`auto` training on a CPU, the training loop asks `precision_race` instead: on an AMX-BF16 Xeon bf16
trained slower than fp32, so there the machine's own measurement decides.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from mitobench import machine


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class PrecisionWarning(UserWarning):
    """An explicit precision that this hardware runs far slower than `auto` would."""


@dataclass(frozen=True)
class Hardware:
    """What the precision decision reads, so a test can fake every capability."""

    device: str
    """`cpu`, `cuda` or another torch device type."""
    cpu_bf16: bool
    cuda_bf16: bool = False
    name: str = ""


@dataclass(frozen=True)
class Choice:
    """What a precision setting became on one device, and why."""

    requested: str
    dtype: torch.dtype | None
    """The autocast dtype; None: fp32 without autocast."""
    scaler: bool
    """Train with a gradient scaler (fp16 gradients underflow without one)."""
    reason: str
    slow: bool = False
    """bf16 that this hardware can only emulate."""

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def record(self) -> dict[str, object]:
        return {"requested": self.requested, "used": self.name, "scaler": self.scaler, "reason": self.reason}


_SLOWDOWN = "measured 11-15x slower than fp32 for EfficientNet-Lite0 (docs/performance.md)"


CPU_BF16_TRAIN_MIN_SIZE = 160
"""Below this input side, `auto` trains in fp32 on a CPU even where bf16 is native: autocast's
per-step weight casts outweigh the smaller convolutions. EfficientNet-Lite0 in the training loop
(cpu-best recipe, batch 32) on a 2-core Zen 5, bf16 against fp32 images/s: 96 px 0.74x, 128 px
0.86x, 160 px 1.10x, 224 px 1.91x (docs/performance.md)."""


def choose(requested: str, hw: Hardware, training: bool = False, size: int | None = None) -> Choice:
    """The decision table: `requested` precision on `hw`, for training or for inference."""
    where = hw.name or hw.device
    if requested == "fp32":
        return Choice(requested, None, False, "fp32 as set")
    if hw.device == "cuda":
        if requested == "fp16" or (requested == "auto" and not hw.cuda_bf16):
            why = "fp16 as set" if requested == "fp16" else f"{where} has no bf16: fp16"
            return Choice(
                requested, torch.float16, training, why + (" with a gradient scaler" if training else "")
            )
        if requested == "bf16" and not hw.cuda_bf16:
            return Choice(requested, torch.bfloat16, False, f"bf16 as set; {where} emulates it", slow=True)
        return Choice(requested, torch.bfloat16, False, f"{where} executes bf16 natively")
    if hw.device == "cpu":
        if requested == "fp16":  # the scripts' autocast(device_type="cuda") does nothing on a CPU
            return Choice(
                requested, None, False, "fp16 autocast is CUDA-only (as the scripts): fp32 on a CPU"
            )
        if (
            requested == "auto"
            and training
            and hw.cpu_bf16
            and size is not None
            and size < CPU_BF16_TRAIN_MIN_SIZE
        ):
            return Choice(
                requested,
                None,
                False,
                f"training at {size} px on a CPU: fp32 (bf16 pays only from {CPU_BF16_TRAIN_MIN_SIZE} px)",
            )
        if hw.cpu_bf16:
            return Choice(requested, torch.bfloat16, False, f"the CPU executes bf16 natively ({where})")
        if requested == "auto":
            return Choice(requested, None, False, f"no native bf16 on this CPU ({where}): fp32")
        return Choice(
            requested, torch.bfloat16, False, f"bf16 as set; this CPU emulates it ({where})", slow=True
        )
    if requested == "bf16":
        return Choice(requested, torch.bfloat16, False, f"bf16 as set on {hw.device}")
    return Choice(requested, None, False, f"fp32 on {hw.device} ({requested} autocast not used there)")


def hardware(dev: torch.device) -> Hardware:
    """The capabilities of `dev` as torch and the processor report them."""
    cpu = machine.cpu()
    if dev.type == "cuda" and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        major, _ = torch.cuda.get_device_capability(index)
        return Hardware("cuda", cpu.bf16_native, major >= 8, torch.cuda.get_device_name(index))
    return Hardware(dev.type, cpu.bf16_native, False, cpu.bf16_via if cpu.bf16_native else cpu.name)


_warned: set[tuple[str, str]] = set()


def resolve(requested: str, dev: torch.device, training: bool = False, size: int | None = None) -> Choice:
    """`choose` on this machine's `dev` (`size`: the training input side, where known); warns once
    per device when the choice will be slow."""
    choice = choose(requested, hardware(dev), training, size)
    if choice.slow and (dev.type, requested) not in _warned:
        _warned.add((dev.type, requested))
        warnings.warn(
            PrecisionWarning(
                f"precision {requested} on this {dev.type} runs emulated bf16 ({choice.reason}), "
                f"{_SLOWDOWN}; set precision=auto (--set precision=auto) to let the hardware choose"
            ),
            stacklevel=2,
        )
    return choice


def autocast_dtype(precision: str, dev: torch.device) -> torch.dtype | None:
    """The autocast dtype of `precision` on `dev` (None: fp32)."""
    return resolve(precision, dev).dtype


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
