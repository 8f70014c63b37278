"""The performance benchmark's quick mode runs end to end (numbers are not asserted: timings are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_perf_quick_mode_writes_its_table(real_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "perf.json"
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "perf.py"),
            "--quick",
            "--data-root",
            str(real_root),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    table = json.loads(out.read_text())
    assert [r["measure"][:3] for r in table["rows"]] == ["(a)", "(b)", "(b)", "(c)", "(c)"]
    assert all(r["reference"] > 0 and r["ours"] > 0 for r in table["rows"])
    assert "| measure | reference | ours | ratio | target |" in run.stdout
    assert set(table["peak_rss_mb"]) >= {"probe/reference", "probe/ours", "train/bare", "infer/bare"}
    speed = table["raw"]["precision/speed"]
    assert min(speed[f"{k}_{p}"] for k in ("infer", "train") for p in ("fp32", "bf16")) > 0
    assert speed["infer_auto"] == ("bf16" if table["machine"]["cpu"]["bf16_native"] else "fp32")
    assert "auto picks" in run.stdout and "native bf16" in run.stdout


def test_fold_reproduction_runs_end_to_end_on_the_cpu(real_root: Path, tmp_path: Path) -> None:
    """The GPU reproduction command, with --quick limits: the paper's fold under two seeds,
    each compared with the paper's same fold, and a verdict over all of them."""
    run = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "reproduce_fold.py"), "--quick", "--folds", "1",
         "--seeds", "3,4", "--data-root", str(real_root), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    record = json.loads((tmp_path / "efficientnetv2_m-paper-quick" / "reproduction.json").read_text())
    assert record["paper_folds"] is True and record["folds"] == [1] and record["seeds"] == [3, 4]
    assert [(r["seed"], r["fold"], r["epochs_run"]) for r in record["runs"]] == [(3, 1, 1), (4, 1, 1)]
    assert {Path(r["run_dir"]).name for r in record["runs"]} == {
        "efficientnetv2_m-paper-quick-seed3", "efficientnetv2_m-paper-quick-seed4"
    }  # fmt: skip
    rows = {r["dataset"]: r for r in record["runs"][0]["rows"]}
    assert rows["amibr/test"]["paper_bacc"] == 0.7423  # published_per_fold.csv, EfficientNetV2-M fold 1
    verdict = {r["dataset"]: r for r in record["verdict"]}
    amibr = verdict["amibr/test"]
    ours = [r["rows"][0]["bacc"] for r in record["runs"]]  # amibr/test sorts first
    assert amibr["n"] == 2 and abs(amibr["bacc_mean"] - sum(ours) / 2) < 1e-12
    assert amibr["paper_mean"] == 0.7474 and amibr["paper_sd_ddof0"] == 0.0167  # published_results.csv
    assert "(the paper's folds)" in run.stdout and "verdict" in run.stdout


def _quick(script: str, real_root: Path, out: Path) -> tuple[subprocess.CompletedProcess, dict]:
    """Run `benchmarks/SCRIPT --quick` on the real data; its completed process and its JSON."""
    cmd = [sys.executable, str(REPO / "benchmarks" / script), "--quick", "--data-root", str(real_root)]
    run = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    return run, json.loads(out.read_text())


def test_slide_speed_quick_mode(real_root: Path, tmp_path: Path) -> None:
    """The slide-reading benchmark runs end to end and agrees with in-memory prediction."""
    _, table = _quick("slide_speed.py", real_root, tmp_path / "slide.json")
    assert table["detections"] == 256 and table["slide_vs_in_memory"] > 0


def test_inference_speed_quick_mode(real_root: Path, tmp_path: Path) -> None:
    """The inference benchmark times each fold model alone and the ensemble of a run it trains."""
    run, result = _quick("inference_speed.py", real_root, tmp_path / "infer.json")
    assert result["patches"] == 128 and result["folds"] == 2
    for precision in ("fp32", "bf16"):  # side by side
        r = result[precision]
        assert len(r["single_model_rounds"]) == 2 and len(r["ensemble_rounds"]) == 1
        # two models cost about twice one: the ensemble is the slower of the two figures
        assert r["ensemble_patches_per_second"] < max(r["single_model_rounds"])
    native = result["machine"]["cpu"]["bf16_native"]
    assert result["auto"] == ("bf16" if native else "fp32")
    assert "one fold model" in run.stdout and "precision auto picks" in run.stdout
    assert "native bf16" in run.stdout  # the processor is named


def test_gpu_check_runs_end_to_end_on_the_cpu(real_root: Path, tmp_path: Path) -> None:
    """The prepared device check, every section with --quick limits, on the CPU (as CI runs it)."""
    run, record = _quick("gpu_check.py", real_root, tmp_path / "check.json")
    assert record["device"] == "cpu" and record["quick"] is True
    assert record["ok"] is True, {k: v.get("error") for k, v in record.items() if isinstance(v, dict)}
    assert record["prepare"]["device_path"] == "uint8" and len(record["prepare"]["cases"]) == 3
    assert all(c["max_levels"] <= 2.0 for c in record["prepare"]["cases"])
    native = record["machine"]["cpu"]["bf16_native"]
    assert record["precision"]["inference_choice"]["used"] == ("bf16" if native else "fp32")
    combos = {(r["preset"], r["mode"]) for r in record["recipes"]["rows"]}
    assert len(combos) == 12 and all(r["checkpoint"] for r in record["recipes"]["rows"])
    assert record["fold"]["paper_folds"] is True and record["fold"]["fold"] == 0
    assert [r["measure"][:3] for r in record["perf"]["rows"]][:2] == ["(a)", "(b)"]
    assert "measured on" in run.stdout and "native bf16" in run.stdout
