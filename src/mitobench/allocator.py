"""Keep glibc's malloc from handing tensor memory back to the kernel after every step.

By default glibc serves allocations above its mmap threshold (at most 32 MiB) with a fresh
`mmap` and returns them with `munmap` on free, and trims the heap's free top. A CPU training
step allocates and frees the same activation tensors every step, so each step faults the same
gigabytes in again, zero-filled by the kernel: on a 2-core EPYC the `cpu-best` student took 12.8
million minor page faults and 22 s of system time in two epochs, about 15 % of its time. Serving
every allocation from the heap and trimming only above 2 GiB of free top removes the faults; the
arithmetic is untouched (the trained weights are bit-identical). docs/performance.md has the
measurement. It is the same cure as preloading jemalloc or tcmalloc, with nothing to install.

Applied once per process by the command line (and by each Ray worker); `$MITOBENCH_MALLOC=system`
leaves glibc's defaults. Elsewhere (musl, macOS, Windows, another malloc preloaded) it does nothing
but say so.
"""

from __future__ import annotations

import ctypes
import os
import platform
from collections.abc import Callable

from mitobench.errors import ConfigError

MALLOC_ENV = "MITOBENCH_MALLOC"
MODES = ("tuned", "system")

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
"""glibc's mallopt parameter numbers (malloc.h)."""
DEFAULT_TRIM_BYTES = 128 * 1024
DEFAULT_MMAP_MAX = 65536
"""glibc's own values, restored when `system` follows `tuned` in one process (tests and
benchmarks/malloc_speed.py do). Not quite a fresh process: any mallopt call switches off glibc's
adaptive mmap threshold for good, so it stays where it had grown to; the state says so."""
TRIM_BYTES = 2**31 - 1
"""Free heap top kept before trimming: mallopt takes a C int, so 2 GiB is the most it can say."""

_state = "glibc defaults (not configured)"


def mode_wanted(env: dict[str, str] | None = None) -> str:
    """`tuned` unless `$MITOBENCH_MALLOC` says `system`; anything else is a user error."""
    raw = (os.environ if env is None else env).get(MALLOC_ENV, "").strip()
    if not raw:
        return "tuned"
    if raw.lower() not in MODES:
        raise ConfigError(
            f"${MALLOC_ENV}={raw!r} is not one of {', '.join(MODES)}",
            f"set {MALLOC_ENV}=system to keep glibc's malloc defaults, or unset it",
        )
    return raw.lower()


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        fn = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def configure_allocator(mode: str | None = None) -> str:
    """Apply `mode` (default: `mode_wanted()`) to this process; returns what is now in effect."""
    global _state
    mode = mode or mode_wanted()
    mallopt = _glibc_mallopt()
    if mallopt is None:
        _state = "left alone (not glibc)"
    elif mode == "system" and _state.startswith("glibc, tuned"):
        mallopt(M_MMAP_MAX, DEFAULT_MMAP_MAX)
        mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM_BYTES)
        _state = (
            f"glibc defaults (${MALLOC_ENV}=system, set back after tuned in this process:"
            " the mmap threshold no longer adapts)"
        )
    elif mode == "system":
        _state = f"glibc defaults (${MALLOC_ENV}=system)"
    elif mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_BYTES) == 1:
        _state = "glibc, tuned: no per-tensor mmap, heap trimmed above 2 GiB free"
    else:
        _state = "glibc defaults (mallopt refused the settings)"
    return _state


def allocator_state() -> str:
    """What `configure_allocator` set in this process, as run.json and benchmarks record it."""
    return _state
