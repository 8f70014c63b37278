"""`mitobench doctor`: the machine, each packaged recipe's precision here, and the places."""

from __future__ import annotations

import json

from mitobench.recipes.config import MODES, PRESETS


def test_doctor_json_names_the_machine_and_every_recipe(cli, tmp_path) -> None:
    code, out, err = cli("doctor", "--json", "--data-root", tmp_path)
    assert code == 0, err
    facts = json.loads(out)
    assert facts["machine"]["cpu"]["cores"] >= 1
    assert "native bf16" in facts["label"]
    assert {(r["preset"], r["mode"]) for r in facts["recipes"]} == {(p, m) for p in PRESETS for m in MODES}
    paper = {r["mode"]: r for r in facts["recipes"] if r["preset"] == "paper"}
    assert paper["e2e"]["train"] == "fp32" and paper["lora"]["train"] == "fp32"
    auto = [r for r in facts["recipes"] if r["preset"] != "paper"]
    assert all(r["precision"] == "auto" for r in auto)
    native = facts["machine"]["cpu"]["bf16_native"]
    assert {r["inference"] for r in auto} == ({"bf16"} if native else {"fp32"})
    data = next(p for p in facts["places"] if p["what"] == "data")
    assert data["path"] == str(tmp_path) and data["bytes"] == 0


def test_doctor_prints_a_table(cli) -> None:
    code, out, _ = cli("doctor")
    assert code == 0
    assert "processor" in out and "cpu-best" in out and "native bf16" in out


def test_threads_option_sets_torch_threads(cli) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        code, out, _ = cli("--threads", "1", "doctor", "--json")
        assert code == 0
        assert json.loads(out)["machine"]["threads"] == 1
        code, _, err = cli("--threads", "0", "doctor")
        assert code == 2 and "--threads" in err
    finally:
        torch.set_num_threads(before)


def test_doctor_names_the_malloc_settings_and_the_environment_can_turn_them_off(cli, monkeypatch) -> None:
    from tests.test_allocator import GLIBC

    code, out, _ = cli("doctor", "--json")
    assert code == 0
    assert json.loads(out)["machine"]["malloc"].startswith("glibc, tuned" if GLIBC else "left alone")
    monkeypatch.setenv("MITOBENCH_MALLOC", "system")
    code, out, _ = cli("doctor", "--json")
    assert code == 0
    assert json.loads(out)["machine"]["malloc"].startswith("glibc defaults" if GLIBC else "left alone")
    monkeypatch.delenv("MITOBENCH_MALLOC")
    assert cli("doctor", "--json")[0] == 0  # leave the process tuned, as the command line does
