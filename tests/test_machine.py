"""The machine's facts: native bf16 from flags, probes and oneDNN caps; usable cores; threads."""

from __future__ import annotations

import pytest

from mitobench import machine
from mitobench.errors import ConfigError


@pytest.mark.parametrize(
    ("flags", "env", "probes", "native", "via"),
    [
        ({"avx2", "fma"}, {}, {}, False, "emulated"),  # Zen 3, Skylake client
        ({"avx512f", "avx512bw"}, {}, {}, False, "emulated"),  # Skylake-SP: AVX-512 without BF16
        ({"avx512f", "avx512_bf16"}, {}, {}, True, "AVX-512 BF16"),  # Zen 4, Cooper Lake
        ({"avx512f", "amx_bf16", "amx_tile"}, {}, {}, True, "AMX-BF16"),  # Sapphire Rapids
        (set(), {}, {"avx512_bf16": True}, True, "AVX-512 BF16"),  # torch's probe alone
        (set(), {}, {"amx": True}, True, "AMX-BF16"),
        ({"fp", "asimd", "bf16", "i8mm"}, {}, {}, True, "Arm BF16"),  # Graviton 3, Neoverse V1
        ({"fp", "asimd"}, {}, {}, False, "emulated"),  # Graviton 2
        ({"avx512_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, {}, False, "ONEDNN_MAX_CPU_ISA=AVX2"),
        ({"avx512_bf16"}, {"DNNL_MAX_CPU_ISA": "avx512_core"}, {}, False, "DNNL_MAX_CPU_ISA=AVX512_CORE"),
        ({"avx512_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, {}, True, "AVX-512 BF16"),
        ({"amx_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, {}, True, "AMX-BF16"),
        ({"avx512_bf16"}, {"ONEDNN_MAX_CPU_ISA": "ALL"}, {}, True, "AVX-512 BF16"),
    ],
)
def test_native_bf16_table(
    flags: set[str], env: dict[str, str], probes: dict[str, bool], native: bool, via: str
) -> None:
    got, why = machine.bf16_support(flags, env=env, probes=probes)
    assert got is native
    assert via in why


def test_usable_cores_follow_affinity_and_the_cgroup_quota(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda _: {0, 1, 2, 3, 4, 5, 6, 7}, raising=False)
    monkeypatch.setattr(machine, "_cgroup_quota", lambda: None)
    assert machine.usable_cores() == 8
    monkeypatch.setattr(machine, "_cgroup_quota", lambda: 1.5)  # cpu.max "150000 100000"
    assert machine.usable_cores() == 2
    monkeypatch.setattr(machine, "_cgroup_quota", lambda: 0.2)
    assert machine.usable_cores() == 1
    monkeypatch.setattr(machine.os, "sched_getaffinity", lambda _: {3}, raising=False)
    monkeypatch.setattr(machine, "_cgroup_quota", lambda: 4.0)
    assert machine.usable_cores() == 1


def test_cgroup_v2_quota_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    real_path = machine.Path
    (tmp_path / "cpu.max").write_text("250000 100000\n")

    def fake(p: str) -> machine.Path:
        return tmp_path / "cpu.max" if p == "/sys/fs/cgroup/cpu.max" else real_path(p)

    monkeypatch.setattr(machine, "Path", fake)
    assert machine._cgroup_quota() == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert machine._cgroup_quota() is None


def test_threads_follow_the_request_then_the_environment_then_the_cores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(machine, "usable_cores", lambda: 3)
    monkeypatch.delenv(machine.THREADS_ENV, raising=False)
    assert machine.threads_wanted() == 3
    monkeypatch.setenv(machine.THREADS_ENV, "1")
    assert machine.threads_wanted() == 1
    assert machine.threads_wanted(2) == 2
    monkeypatch.setenv(machine.THREADS_ENV, "two")
    with pytest.raises(ConfigError, match="MITOBENCH_THREADS"):
        machine.threads_wanted()


def test_configure_threads_sets_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert machine.configure_threads(1) == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_describe_names_the_processor_and_versions() -> None:
    facts = machine.describe()
    assert facts["cpu"]["cores"] >= 1
    assert isinstance(facts["cpu"]["bf16_native"], bool)
    assert facts["cpu_label"].endswith(("native bf16 no", ")")) and "cores" in facts["cpu_label"]
    assert facts["torch"] and facts["threads"] >= 1
