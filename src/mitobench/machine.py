"""What this machine is: processor, native bf16, usable cores, GPUs and versions.

Defaults that depend on the hardware (precision, threads) read these facts instead of assuming
them: a CPU without bf16 instructions emulates bf16 more than ten times slower than fp32, and a
container may use fewer cores than the host has. Every run, benchmark and report records them.
"""

from __future__ import annotations

import math
import os
import platform
import subprocess
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path
from typing import Any

import torch

THREADS_ENV = "MITOBENCH_THREADS"
MAX_THREADS = 1024
"""More intra-op threads than any machine has cores: a typo that would only oversubscribe."""

_ONEDNN_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
_BF16_ISA_WORDS = ("BF16", "AMX", "AVX10", "FP16")
"""oneDNN ISA caps that keep native bf16 (AVX512_CORE_BF16, AVX512_CORE_FP16, *_AMX*, AVX10_*)."""


@dataclass(frozen=True)
class Cpu:
    """The processor as far as it matters for speed."""

    name: str
    arch: str
    model: str
    """Vendor family/model numbers, where the name does not say the generation (e.g. under KVM)."""
    isa: str
    """The vector ISA torch dispatches to (`torch.backends.cpu.get_cpu_capability()`)."""
    bf16_native: bool
    bf16_via: str
    """Why (not): the instruction set that executes bf16, or what is missing."""
    cores: int
    """Cores this process may use (affinity and cgroup quota), not the host's count."""

    @property
    def label(self) -> str:
        """How figures name their processor: model, cores, bf16 yes/no."""
        bf16 = f"yes ({self.bf16_via})" if self.bf16_native else "no"
        model = f"{self.model}, " if self.model else ""
        return f"{self.name} ({model}{self.isa}), {self.cores} cores, native bf16 {bf16}"


@dataclass(frozen=True)
class Gpu:
    name: str
    capability: tuple[int, int]
    memory_gib: float
    bf16_native: bool


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return {}
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if out:
                break  # end of the first processor's block
            continue
        out.setdefault(key.strip(), value.strip())
    return out


def _cpu_name(info: dict[str, str]) -> str:
    name = info.get("model name") or info.get("Model") or info.get("Hardware")
    if not name and platform.system() == "Darwin":
        try:
            name = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            name = ""
    return name or platform.processor() or platform.machine() or "unknown processor"


def _model_numbers(info: dict[str, str]) -> str:
    if "cpu family" in info:
        return f"family {info['cpu family']} model {info.get('model', '?')}"
    if "CPU part" in info:
        return f"implementer {info.get('CPU implementer', '?')} part {info['CPU part']}"
    return ""


def _torch_probe(name: str) -> bool:
    """One of torch's CPU feature probes (`torch.cpu._is_*_supported`), False where absent."""
    probe = getattr(torch.cpu, name, None)
    try:
        return bool(probe()) if callable(probe) else False
    except Exception:  # a probe that fails says nothing
        return False


def bf16_support(
    flags: set[str], env: dict[str, str] | None = None, probes: dict[str, bool] | None = None
) -> tuple[bool, str]:
    """(native, why) from the CPU's flags, torch's probes and a oneDNN ISA cap in `env`.

    Native means the instructions exist: AVX-512 BF16 or AMX on x86, the BF16 extension on Arm.
    A cap (`ONEDNN_MAX_CPU_ISA=AVX2`) below those makes oneDNN emulate bf16, so it counts as none.
    """
    env = dict(os.environ) if env is None else env
    probes = probes or {}
    via = ""
    if probes.get("amx") or "amx_bf16" in flags:
        via = "AMX-BF16"
    elif probes.get("avx512_bf16") or "avx512_bf16" in flags:
        via = "AVX-512 BF16"
    elif "bf16" in flags:  # Arm: the Features line of /proc/cpuinfo
        via = "Arm BF16"
    if not via:
        return False, "no bf16 instructions (AVX-512 BF16, AMX or Arm BF16): bf16 is emulated"
    for var in _ONEDNN_ENV:
        cap = env.get(var, "").strip().upper()
        if cap and cap not in ("ALL", "DEFAULT") and not any(w in cap for w in _BF16_ISA_WORDS):
            return False, f"{via} present but {var}={cap} keeps oneDNN from using it: bf16 is emulated"
    return True, via


def usable_cores() -> int:
    """Cores this process may run on: the affinity mask, capped by a cgroup CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _cgroup_quota() -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` or v1 CFS quota; None when unlimited or unknown."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 else None
    except (OSError, ValueError):
        return None


@cache
def cpu() -> Cpu:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    probes = {
        "amx": _torch_probe("_is_amx_tile_supported"),
        "avx512_bf16": _torch_probe("_is_avx512_bf16_supported"),
    }
    native, via = bf16_support(flags, probes=probes)
    return Cpu(
        name=_cpu_name(info),
        arch=platform.machine(),
        model=_model_numbers(info),
        isa=torch.backends.cpu.get_cpu_capability(),
        bf16_native=native,
        bf16_via=via,
        cores=usable_cores(),
    )


def gpus() -> list[Gpu]:
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        cap = (props.major, props.minor)
        out.append(Gpu(props.name, cap, round(props.total_memory / 2**30, 1), cap >= (8, 0)))
    return out


def threads_wanted(requested: int | None = None) -> int:
    """Intra-op threads: `requested`, else `$MITOBENCH_THREADS`, else the usable cores."""
    if requested is None:
        raw = os.environ.get(THREADS_ENV, "").strip()
        if raw:
            try:
                requested = int(raw)
            except ValueError:
                requested = 0
            if not 1 <= requested <= MAX_THREADS:
                from mitobench.errors import ConfigError

                raise ConfigError(
                    f"${THREADS_ENV}={raw!r} is not a number of threads from 1 to {MAX_THREADS}",
                    f"set {THREADS_ENV} to e.g. 2, or unset it to use every usable core",
                )
    return requested or usable_cores()


def configure_threads(requested: int | None = None) -> int:
    """Set torch's intra-op threads to the usable cores (or as asked); returns the number."""
    n = threads_wanted(requested)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def describe() -> dict[str, Any]:
    """The machine's facts as recorded in run.json, benchmark JSON and the report header."""
    import timm

    from mitobench import __version__
    from mitobench.allocator import allocator_state

    c = cpu()
    return {
        "cpu": asdict(c),
        "cpu_label": c.label,
        "gpus": [asdict(g) for g in gpus()],
        "threads": torch.get_num_threads(),
        "malloc": allocator_state(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda or "",
        "timm": timm.__version__,
        "python": platform.python_version(),
        "mitobench": __version__,
        "os": platform.platform(),
    }


def label() -> str:
    """One line naming where a figure was measured: the GPU if one is used, else the CPU."""
    found = gpus()
    c = cpu()
    return f"{found[0].name} (CUDA {torch.version.cuda}) with {c.label}" if found else c.label
