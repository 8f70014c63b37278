"""Runs and grids: nothing silently reused, replaced or trained twice."""

from __future__ import annotations

import multiprocessing as mp
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mitobench.benchmark.grid import GridConfig
from mitobench.benchmark.jobs import claim
from mitobench.benchmark.runner import run_grid
from mitobench.benchmark.store import ResultsStore
from mitobench.errors import ConfigError
from mitobench.recipes.config import train_config
from tests.conftest import REPO, TINY_ARGS, make_atnorm, tiny_grid


def test_two_folders_named_alike_get_two_names(separable_root: Path, tmp_path: Path, cli) -> None:
    a, b = make_atnorm(tmp_path / "siteA", "test"), make_atnorm(tmp_path / "siteB", "test", n_atyp=4)
    run = tmp_path / "run"
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "0",
        "--eval", a / "test", "--eval", b / "test", "--data-root", separable_root, "--out", run, *TINY_ARGS,
    )  # fmt: skip
    assert code == 0, err
    files = sorted(p.name for p in (run / "fold_0" / "predictions").iterdir() if p.name.startswith("test-"))
    assert len(files) == 2  # siteA/test and siteB/test: two files, neither replaced by the other
    code, _, err = cli("evaluate", run, "--dataset", f"site={a / 'test'}")
    assert code == 0, err
    code, _, err = cli("evaluate", run, "--dataset", f"site={b / 'test'}")
    assert code == 2 and "already holds a dataset named 'site/all'" in err and "Traceback" not in err


def _grid_file(tmp_path: Path, **train: object) -> Path:
    grid = tiny_grid(runs=[{"model": "resnet10t", "modes": ["e2e"]}])
    values = grid.model_dump(mode="json")
    values["train"] = {**values["train"], **train}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_changed_settings_are_named_not_reported_as_finished(separable_root: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    grid = GridConfig.model_validate(yaml.safe_load(_grid_file(tmp_path).read_text()))
    first = run_grid(grid, results, separable_root, job_overrides={"pretrained": False})
    assert len(first.done) == 2
    changed = GridConfig.model_validate(yaml.safe_load(_grid_file(tmp_path, max_epochs=3).read_text()))
    again = run_grid(changed, results, separable_root, job_overrides={"pretrained": False})
    assert again.done == [] and again.skipped == [] and len(again.failed) == 2
    message = next(iter(again.failed.values()))
    assert "other settings (max_epochs: 2 -> 3)" in message and "--results" in message
    same = run_grid(grid, results, separable_root, job_overrides={"pretrained": False})
    assert len(same.skipped) == 2 and not same.failed


def _hold(results: str, key: str, ready, release) -> None:
    with claim(Path(results), key) as mine:
        assert mine
        ready.set()
        release.wait(30)


def test_a_job_claimed_by_another_process_is_left_to_it(separable_root: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    grid = tiny_grid(runs=[{"model": "resnet10t", "modes": ["e2e"]}])
    ctx = mp.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold, args=(str(results), "resnet10t/e2e/cpu/fold_0", ready, release))
    holder.start()
    assert ready.wait(30)
    outcome = run_grid(grid, results, separable_root, job_overrides={"pretrained": False})
    release.set()
    holder.join(30)
    assert outcome.busy == ["resnet10t/e2e/cpu/fold_0"] and outcome.done == ["resnet10t/e2e/cpu/fold_1"]
    assert ResultsStore(results).status("resnet10t/e2e/cpu/fold_0") is None  # never started here
    later = run_grid(grid, results, separable_root, job_overrides={"pretrained": False})
    assert later.done == ["resnet10t/e2e/cpu/fold_0"]  # the lock died with its process


def test_the_lock_is_freed_when_its_process_is_killed(tmp_path: Path) -> None:
    code = (
        "import sys, time; from pathlib import Path; from mitobench.benchmark.jobs import claim\n"
        f"with claim(Path({str(tmp_path)!r}), 'k') as mine:\n"
        "    print(mine, flush=True); time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "True"
    with claim(tmp_path, "k") as mine:
        assert not mine
    proc.kill()
    proc.wait()
    with claim(tmp_path, "k") as mine:
        assert mine


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("label_smoothing", 2),
        ("fixed_threshold", 1.5),
        ("epoch_size", 0),
        ("input_size", 0),
        ("max_epochs", 0),
        ("weight_decay", -1),
        ("warmup_epochs", -0.5),
        ("plateau_factor", 1.5),
        ("early_stopping_patience", 0),
    ],
)
def test_every_setting_is_range_checked(setting: str, value: object) -> None:
    with pytest.raises(ConfigError, match=setting):
        train_config("e2e", "cpu", {setting: value})


def test_probe_and_lora_settings_are_range_checked(cli, tmp_path: Path) -> None:
    config = tmp_path / "run.yaml"
    cases = [
        ({"probe": {"c_grid": []}}, "c_grid"),
        ({"probe": {"c_grid": [0]}}, "c_grid"),
        ({"lora": {"r": 0}}, "lora.r"),
        ({"lora": {"dropout": 1.0}}, "lora.dropout"),
    ]
    for bad, needle in cases:
        config.write_text(yaml.safe_dump({"model": "tf_efficientnet_lite0", **bad}))
        code, _, err = cli("train", "--config", config, "--out", tmp_path / "r", "--data-root", tmp_path)
        assert code == 2 and needle in err, err


def test_a_missing_data_root_writes_nothing(tmp_path: Path, cli) -> None:
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--data-root", tmp_path / "nope", "--out", out
    )
    assert code == 2 and "does not exist" in err
    assert not out.exists()


def test_outputs_respect_the_umask(separable_root: Path, tmp_path: Path, cli) -> None:
    old = os.umask(0o022)
    try:
        out = tmp_path / "run"
        code, _, err = cli(
            "train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "0",
            "--eval", "amibr/test", "--data-root", separable_root, "--out", out, *TINY_ARGS,
        )  # fmt: skip
        assert code == 0, err
        for path in (out / "run.json", out / "fold_0" / "done.json", out / "fold_0" / "best.safetensors",
                     out / "fold_0" / "predictions" / "amibr__test.csv"):  # fmt: skip
            assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    finally:
        os.umask(old)


def test_ctrl_c_says_what_was_kept_and_how_to_resume(separable_root: Path, tmp_path: Path) -> None:
    """A real SIGINT to a training process: one line, the exact command, exit 130."""
    out = tmp_path / "run"
    args = ["train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "0",
            "--data-root", str(separable_root), "--out", str(out), "--set", "max_epochs=50",
            "--set", "input_size=32", "--set", "precision=fp32"]  # fmt: skip
    # A shell without job control starts background jobs with SIGINT ignored, and Python then
    # installs no KeyboardInterrupt handler in the child (pytest run as `cmd &` failed so): give the
    # child the handler a terminal's Ctrl-C meets.
    code = (
        "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from mitobench.cli import main; sys.argv = ['mitobench', *sys.argv[1:]]; main()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stderr=subprocess.PIPE, text=True, cwd=REPO)
    deadline = 120
    import time

    start = time.monotonic()
    while not (out / "fold_0" / "last.pt").is_file():  # training is under way
        assert time.monotonic() - start < deadline and proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(2)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, err
    assert "resume with: mitobench train --model tf_efficientnet_lite0" in lines[0]
    assert f"--out {out}" in lines[0]
