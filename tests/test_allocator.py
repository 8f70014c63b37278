"""The malloc settings: asked for by name, applied through glibc, and they remove the faults."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys

import pytest

from mitobench import allocator
from mitobench.errors import ConfigError

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_the_mode_is_tuned_unless_the_environment_says_system() -> None:
    assert allocator.mode_wanted({}) == "tuned"
    assert allocator.mode_wanted({"MITOBENCH_MALLOC": " System "}) == "system"
    with pytest.raises(ConfigError, match="MITOBENCH_MALLOC") as info:
        allocator.mode_wanted({"MITOBENCH_MALLOC": "jemalloc"})
    assert "MITOBENCH_MALLOC=system" in (info.value.fix or "")


_PROBE = """
import resource, statistics, sys
import torch
from mitobench import allocator
state = allocator.configure_allocator(sys.argv[1])
faults = []
for _ in range(28):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    x = torch.empty(64 * 2**18, dtype=torch.float32)  # 64 MiB, written and freed: one step
    x.fill_(1.0)
    del x
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(state)
print(statistics.median(faults[16:]))  # the heap settles over the first steps (measured: 1-9)
"""


def _probe(mode: str) -> tuple[str, float]:
    """(state, median minor page faults per step) in a fresh process set to `mode`."""
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True)
    state, faults = out.stdout.strip().splitlines()[-2:]
    return state, float(faults)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tuned_malloc_stops_faulting_a_tensor_in_again_every_step() -> None:
    """Above glibc's mmap ceiling (32 MiB) every free unmaps: a 64 MiB tensor is 16,384 pages."""
    pages = 64 * 2**20 // resource.getpagesize()
    state, faults = _probe("system")
    assert state.startswith("glibc defaults") and faults > 0.9 * pages
    state, faults = _probe("tuned")
    assert state.startswith("glibc, tuned") and faults < 0.05 * pages


@pytest.mark.skipif(GLIBC, reason="this machine has glibc")
def test_elsewhere_it_does_nothing_but_say_so() -> None:
    assert allocator.configure_allocator("tuned") == "left alone (not glibc)"


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_system_after_tuned_in_one_process_says_it_is_not_a_fresh_default() -> None:
    """glibc's adaptive mmap threshold is off for good after any mallopt: the state must not hide it."""
    try:
        assert allocator.configure_allocator("tuned").startswith("glibc, tuned")
        state = allocator.configure_allocator("system")
        assert state.startswith("glibc defaults") and "no longer adapts" in state
        assert allocator.allocator_state() == state
    finally:
        allocator.configure_allocator("tuned")  # as the command line leaves a process


def test_off_glibc_both_modes_leave_malloc_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The branch a musl, macOS or Windows process takes, run here by hiding glibc's mallopt."""
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: None)
    try:
        assert allocator.configure_allocator("tuned") == "left alone (not glibc)"
        assert allocator.configure_allocator("system") == "left alone (not glibc)"
        assert allocator.allocator_state() == "left alone (not glibc)"
    finally:
        monkeypatch.undo()
        allocator.configure_allocator("tuned")  # as the command line leaves a process
