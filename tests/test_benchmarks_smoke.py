"""The performance benchmark's quick mode runs end to end (numbers are not asserted: timings are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO


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
    assert result["bf16"]["patches"] == (128 if native else 16)  # emulated bf16: the path, on a few
    onnx = result["onnx"]  # ONNX Runtime beside PyTorch (the dev extra installs it)
    assert onnx["patches"] == 128 and len(onnx["single_model_rounds"]) == 1
    fastest = max(
        ("PyTorch fp32", result["fp32"]), ("PyTorch bf16", result["bf16"]), ("ONNX Runtime fp32", onnx),
        key=lambda e: e[1]["single_model_patches_per_second"],
    )[0]  # fmt: skip
    assert (
        result["fastest_engine"] == fastest
        and f"fastest engine here for one fold model: {fastest}" in run.stdout
    )
    assert "one fold model" in run.stdout and "precision auto picks" in run.stdout
    assert "native bf16" in run.stdout  # the processor is named
    # `--engine auto`: PyTorch where it computes in bf16 natively, else ONNX Runtime (installed here)
    assert result["engine_auto"] == ("PyTorch bf16" if native else "ONNX Runtime fp32")
    assert f"--engine auto runs {result['engine_auto']} here" in run.stdout


def _speed(real_root: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "benchmarks" / "inference_speed.py"), "--data-root", str(real_root)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=600)


def test_inference_speed_times_the_shipped_files(real_root: Path, tmp_path: Path) -> None:
    """`--shipped NAME` times what `predict` runs: the package's bundle under PyTorch and its own
    `.onnx` under ONNX Runtime (not a re-export), on as many patches as asked."""
    run = _speed(
        real_root,
        "--shipped",
        "amibr-lite0",
        "--limit",
        "24",
        "--repeat",
        "1",
        "--out",
        str(tmp_path / "s.json"),
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads((tmp_path / "s.json").read_text())
    assert result["run"] == "shipped:amibr-lite0" and result["folds"] == 1
    assert result["fp32"]["patches"] == 24 and result["onnx"]["patches"] == 24
    assert result["input_size"] == 224  # the shipped student's own size, read from its bundle
    assert "native bf16" in run.stdout and "ONNX Runtime" in run.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--shipped", "no-such-model"), "no-such-model: no such shipped model"),
        (("--shipped", "amibr-lite"), "did you mean amibr-lite0? shipped models: amibr-lite0"),
        (("--shipped", "amibr-lite0", "--run", "x"), "argument --run: not allowed with argument --shipped"),
        ((), "one of the arguments --run --shipped --quick is required"),
        (("--shipped", "amibr-lite0", "--limit", "0"), "argument --limit: 0 is below 1"),
        (("--shipped", "amibr-lite0", "--repeat", "nan"), "argument --repeat: 'nan' is not a whole number"),
        (("--shipped", "amibr-lite0", "--out", "EXISTS"), "exists: pass another --out path"),
    ],
)
def test_inference_speed_user_errors(
    real_root: Path, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """An unknown shipped model, two sources or none, a count below 1 or not a number, an --out
    that exists (left as it was): argparse's one message and exit 2."""
    existing = tmp_path / "[old] result.json"
    existing.write_text("kept")
    run = _speed(real_root, *(str(existing) if a == "EXISTS" else a for a in args))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert message in run.stderr
    assert existing.read_text() == "kept"


def test_gpu_check_runs_end_to_end_on_the_cpu(real_root: Path, tmp_path: Path) -> None:
    """The prepared device check, every section with --quick limits, on the CPU (as CI runs it).
    Its `fold` and `perf` sections run benchmarks/reproduce_fold.py and benchmarks/perf.py, so
    this is their smoke test too (once, not twice: they are the slowest part of CI)."""
    run, record = _quick("gpu_check.py", real_root, tmp_path / "check.json")
    assert record["device"] == "cpu" and record["quick"] is True
    assert record["ok"] is True, {k: v.get("error") for k, v in record.items() if isinstance(v, dict)}
    assert record["prepare"]["device_path"] == "uint8" and len(record["prepare"]["cases"]) == 3
    assert all(c["max_levels"] <= 2.0 for c in record["prepare"]["cases"])
    native = record["machine"]["cpu"]["bf16_native"]
    assert record["precision"]["inference_choice"]["used"] == ("bf16" if native else "fp32")
    combos = {(r["preset"], r["mode"]) for r in record["recipes"]["rows"]}
    assert len(combos) == 12 and all(r["checkpoint"] for r in record["recipes"]["rows"])
    assert "measured on" in run.stdout and "native bf16" in run.stdout
    _check_fold(record["fold"], REPO.parent / "shared" / "reference")
    _check_perf(record["perf"], native)


def _check_fold(fold: dict, reference: Path) -> None:
    """reproduce_fold.py --quick: the paper's fold 0 under two seeds, each beside the paper's same
    fold, and a verdict over both (the paper's figures read here from the reference files)."""
    import pandas as pd

    per_fold = pd.read_csv(reference / "published_per_fold.csv")
    same = (
        (per_fold["model"] == "EfficientNetV2-M")
        & (per_fold["dataset"] == "AMi-Br")
        & (per_fold["fold"] == 0)
    )
    assert fold["paper_folds"] is True and fold["folds"] == [0] and fold["seeds"] == [3, 4]
    assert [(r["seed"], r["fold"], r["epochs_run"]) for r in fold["runs"]] == [(3, 0, 1), (4, 0, 1)]
    assert {Path(r["run_dir"]).name for r in fold["runs"]} == {
        "efficientnetv2_m-paper-quick-seed3", "efficientnetv2_m-paper-quick-seed4"
    }  # fmt: skip
    rows = {r["dataset"]: r for r in fold["runs"][0]["rows"]}
    assert rows["amibr/test"]["paper_bacc"] == float(per_fold.loc[same, "balanced_accuracy"].iloc[0])
    verdict = {r["dataset"]: r for r in fold["verdict"]}
    amibr = verdict["amibr/test"]
    ours = [r["rows"][0]["bacc"] for r in fold["runs"]]  # amibr/test sorts first
    assert amibr["n"] == 2 and abs(amibr["bacc_mean"] - sum(ours) / 2) < 1e-12
    published = pd.read_csv(reference / "published_results.csv")
    paper = published[(published["model"] == "EfficientNetV2-M") & (published["dataset"] == "AMi-Br")].iloc[0]
    assert (amibr["paper_mean"], amibr["paper_sd_ddof0"]) == (
        paper["balanced_accuracy_mean"], paper["balanced_accuracy_std"]
    )  # fmt: skip
    assert "(the paper's folds)" in fold["stdout"] and "verdict" in fold["stdout"]


def _check_perf(perf: dict, native: bool) -> None:
    """perf.py --quick: the table's rows, memory, and fp32 vs bf16 with auto's pick."""
    assert [r["measure"][:3] for r in perf["rows"]] == ["(a)", "(b)", "(b)", "(c)", "(c)"]
    assert all(r["reference"] > 0 and r["ours"] > 0 for r in perf["rows"])
    assert "| measure | reference | ours | ratio | target |" in perf["stdout"]
    assert set(perf["peak_rss_mb"]) >= {"probe/reference", "probe/ours", "train/bare", "infer/bare"}
    speed = perf["precision_speed"]
    assert min(speed[f"{k}_{p}"] for k in ("infer", "train") for p in ("fp32", "bf16")) > 0
    assert speed["infer_auto"] == ("bf16" if native else "fp32")
    assert "auto picks" in perf["stdout"] and "native bf16" in perf["stdout"]
    # ours runs with the command line's malloc settings, the reference scripts with glibc's own
    from tests.test_allocator import GLIBC

    assert perf["malloc"]["train/reference"] == "glibc defaults (not configured)"
    assert perf["malloc"]["train/ours"].startswith("glibc, tuned" if GLIBC else "left alone")


def test_malloc_speed_counts_the_faults_the_tuned_allocator_removes(tmp_path: Path) -> None:
    """Faults, unlike timings, are not noise: at 160 px fp32 each step's activations exceed glibc's
    32 MiB mmap ceiling, so the defaults fault them in every step and the tuned heap does not."""
    import platform

    out = tmp_path / "malloc.json"
    cmd = [
        sys.executable,
        str(REPO / "benchmarks" / "malloc_speed.py"),
        "--size",
        "160",
        "--precision",
        "fp32",
    ]
    run = subprocess.run(
        [*cmd, "--rounds", "2", "--steps", "2", "--settle", "8", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert "native bf16" in result["machine"] and len(result["rounds"]["tuned"]) == 2
    if platform.libc_ver()[0] == "glibc":
        assert result["faults_per_step"]["system"] > 10 * result["faults_per_step"]["tuned"]


def test_threshold_rules_compares_the_rules_on_a_runs_validation_predictions(tmp_path: Path) -> None:
    """benchmarks/threshold_rules.py on a run folder of three folds' validation predictions: every
    rule held out fold by fold, and the pooled rules' thresholds equal to a brute-force search's."""
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from mitobench.runs.rundir import RunDir

    rng = np.random.default_rng(5)
    run, frames = RunDir(tmp_path / "run"), []
    for k in range(3):
        labels = (rng.random(120) < 0.25).astype(int)
        probs = 1 / (1 + np.exp(-rng.normal(1.5 * labels - 1.0, 1.0)))
        run.fold(k).write_predictions("amibr/train/val", [f"{k}-{i}" for i in range(120)], labels, probs)
        run.fold(k).write_done({})
        frames.append((labels, np.round(probs, 6)))  # as stored
    out = tmp_path / "rules.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "threshold_rules.py"), str(run.path), "--json", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| prior_others |" in done.stdout and "| pooled_others |" in done.stdout
    assert "| call_rate_others |" in done.stdout
    result = json.loads(out.read_text())[str(run.path)]
    assert len(result["per_fold"]) == 3 * 6 and {r["fold"] for r in result["per_fold"]} == {0, 1, 2}
    summary = {r["rule"]: r for r in result["summary"]}
    y = np.concatenate([f[0] for f in frames])
    p = np.concatenate([f[1] for f in frames])
    best = max(balanced_accuracy_score(y, p >= t) for t in np.unique(p))
    assert summary["pooled_others"]["pooled_balanced_accuracy"] == pytest.approx(best)
    assert 0 < summary["prior_others"]["pooled_threshold"] < 1
    assert summary["own"]["balanced_accuracy"] >= summary["pooled_others"]["balanced_accuracy"]


def _weight_soup():
    """benchmarks/weight_soup.py as a module (benchmarks/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("weight_soup", REPO / "benchmarks" / "weight_soup.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_uniform_soup_is_the_mean_of_the_weights_and_keeps_integer_buffers() -> None:
    import torch

    soup = _weight_soup().uniform_soup
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, -2.0]), "n": torch.tensor(7)}
    c = {"w": torch.tensor([2.0, 3.0]), "n": torch.tensor(1)}
    out = soup([a, b, c])
    assert torch.equal(out["w"], torch.tensor([2.0, 1.0])) and int(out["n"]) == 3
    half = soup(
        [{"w": torch.tensor([1.0], dtype=torch.bfloat16)}, {"w": torch.tensor([2.0], dtype=torch.bfloat16)}]
    )
    assert half["w"].dtype == torch.bfloat16 and float(half["w"]) == 1.5
    with pytest.raises(ValueError, match="different keys"):
        soup([a, {"w": a["w"]}])


def test_recompute_bn_sets_the_statistics_of_the_images_as_the_network_sees_them(trained_run: Path) -> None:
    """After recompute_bn, the first batch-norm layer's running mean and variance are the per-channel
    mean and (unbiased per batch, then averaged) variance of its inputs over the images, computed
    here by a forward hook with the statistics frozen."""
    import numpy as np
    import torch

    from mitobench.inference.predictor import from_run
    from mitobench.train.batches import ImageBatches
    from mitobench.train.model import load_trainable_state

    predictor = from_run(trained_run, folds=[0])
    model = predictor.model
    load_trainable_state(model, predictor.fold_states[0])
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    before = bn.running_mean.clone()
    images = np.random.default_rng(0).integers(0, 256, (12, 40, 40, 3), dtype=np.uint8)
    seen: list[torch.Tensor] = []
    handle = bn.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().float()))
    model.eval()
    enc = model.encoder
    data = ImageBatches(images, np.zeros(12, dtype=np.int64), enc, [], False, torch.device("cpu"))
    with torch.no_grad():
        for i in range(0, 12, 4):
            model(data.get(np.arange(i, i + 4)))
    handle.remove()
    _weight_soup().recompute_bn(predictor, images, batch=4)
    means = torch.stack([x.mean((0, 2, 3)) for x in seen])
    variances = torch.stack([x.var((0, 2, 3), unbiased=True) for x in seen])
    assert not torch.allclose(before, bn.running_mean)
    torch.testing.assert_close(bn.running_mean, means.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(bn.running_var, variances.mean(0), rtol=1e-4, atol=1e-5)
    assert not model.training


def test_weight_soup_refuses_a_single_run(tmp_path: Path) -> None:
    cmd = [sys.executable, str(REPO / "benchmarks" / "weight_soup.py"), str(tmp_path), "--fold", "0",
           "--data-root", str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "two runs or more" in done.stderr


def test_threshold_folds_scores_thresholds_from_fewer_folds_held_out(tmp_path: Path) -> None:
    """benchmarks/threshold_folds.py on three folds' validation predictions: every held-out fold
    against every set of the other folds, each threshold the best on its set (by a brute-force
    search with scikit-learn) and scored on the held-out fold alone."""
    import numpy as np
    from sklearn.metrics import balanced_accuracy_score

    from mitobench.runs.rundir import RunDir

    rng = np.random.default_rng(11)
    run, frames = RunDir(tmp_path / "run"), {}
    for k in range(3):
        labels = (rng.random(90) < 0.3).astype(int)
        probs = 1 / (1 + np.exp(-rng.normal(1.2 * labels - 0.8 + 0.3 * k, 1.0)))
        run.fold(k).write_predictions("amibr/train/val", [f"{k}-{i}" for i in range(90)], labels, probs)
        run.fold(k).write_done({})
        frames[k] = (labels, np.round(probs, 6))  # as stored
    out = tmp_path / "folds.json"
    script = str(REPO / "benchmarks" / "threshold_folds.py")
    done = subprocess.run([sys.executable, script, str(run.path), "--ship", "0,2", "--json", str(out)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    record = json.loads(out.read_text())

    def best(folds: list[int]) -> float:
        y = np.concatenate([frames[j][0] for j in folds])
        p = np.concatenate([frames[j][1] for j in folds])
        return max(balanced_accuracy_score(y, p >= t) for t in np.unique(p))

    def score(folds: list[int], t: float) -> float:
        y = np.concatenate([frames[j][0] for j in folds])
        p = np.concatenate([frames[j][1] for j in folds])
        return balanced_accuracy_score(y, p >= t)

    rows = record["rows"]
    assert sorted((r["held_out"], r["folds"]) for r in rows) == [
        (0, "1"), (0, "1,2"), (0, "2"), (1, "0"), (1, "0,2"), (1, "2"), (2, "0"), (2, "0,1"), (2, "1")
    ]  # fmt: skip
    for r in rows:
        subset = [int(j) for j in r["folds"].split(",")]
        assert r["m"] == len(subset) and r["held_out"] not in subset
        assert score(subset, r["threshold"]) == pytest.approx(best(subset))
        assert r["balanced_accuracy"] == pytest.approx(score([r["held_out"]], r["threshold"]))
    summary = {s["m"]: s for s in record["summary"]}
    assert summary[1]["pairs"] == 6 and summary[2]["pairs"] == 3
    two = [r["balanced_accuracy"] for r in rows if r["m"] == 2]
    assert summary[2]["balanced_accuracy"] == pytest.approx(np.mean(two))
    assert score([0, 2], record["ship_threshold"]) == pytest.approx(best([0, 2]))
    assert score([0, 1, 2], record["every_threshold"]) == pytest.approx(best([0, 1, 2]))
    assert "| 2 | 3 |" in done.stdout and "threshold pooled from folds 0,2" in done.stdout
    again = subprocess.run([sys.executable, script, str(run.path), "--json", str(out)],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert again.returncode == 2 and "exists" in again.stderr and json.loads(out.read_text()) == record
    wrong = subprocess.run([sys.executable, script, str(run.path), "--ship", "0,7"],
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert wrong.returncode == 2 and "not among the run's finished folds" in wrong.stderr
    run.fold(3).write_done({})  # done, but its validation predictions are missing
    missing = subprocess.run([sys.executable, script, str(run.path)],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "fold 3 holds 0 validation prediction files, not one" in missing.stderr
