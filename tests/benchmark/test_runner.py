"""`mitobench run`: a grid of jobs into one store; never redone; failures recorded; kill and resume."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mitobench import machine
from mitobench.benchmark.grid import load_grid
from mitobench.benchmark.runner import run_grid
from mitobench.benchmark.store import ResultsStore
from tests.conftest import TINY_TRAIN, tiny_grid


def test_grid_runs_every_job_once(separable_root: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    first = run_grid(tiny_grid(), results, separable_root, job_overrides={"pretrained": False})
    assert len(first.done) == 4 and not first.failed
    jobs = ResultsStore(results).jobs()
    assert set(jobs["status"]) == {"done"} and len(jobs) == 4
    assert ResultsStore(results).fold_fingerprints()["folds_sha256"].str.len().eq(64).all()
    metrics = ResultsStore(results).metrics()
    assert {"amibr/test", "atnorm-br/test", "atnorm-md/test", "amibr/val"} <= set(metrics["dataset"])
    preds = ResultsStore(results).predictions()
    assert len(preds[(preds["dataset"] == "amibr/test") & (preds["mode"] == "e2e")]) == 2 * 36
    again = run_grid(tiny_grid(), results, separable_root, job_overrides={"pretrained": False})
    assert again.done == [] and len(again.skipped) == 4
    assert set(ResultsStore(results).machines()) == {machine.label()}  # the report's "trained on"


def test_a_grid_run_lists_every_fold_and_exports_from_its_results_folder(
    separable_root: Path, tmp_path: Path, cli
) -> None:
    """A grid trains a run one fold per job: run.json and the bundle still name both folds, the
    bundle does not call fine-tuned weights random, and `export results/NAME` finds the one run."""
    import json

    from mitobench.inference.bundle import from_bundle

    results = tmp_path / "results"
    grid = tiny_grid(runs=[{"model": "resnet10t", "modes": ["e2e"]}])
    run_grid(grid, results, separable_root, job_overrides={"pretrained": False})
    (run,) = (results / "runs").iterdir()
    assert json.loads((run / "run.json").read_text())["spec"]["folds"] == [0, 1]
    code, out, err = cli("export", results, "--out", tmp_path / "b.safetensors")
    assert code == 0, err
    assert "2 fold model(s)" in out
    predictor = from_bundle(tmp_path / "b.safetensors")
    assert predictor.meta["run"]["folds"] == [0, 1]
    from safetensors import safe_open

    with safe_open(str(tmp_path / "b.safetensors"), framework="pt") as fh:
        origin = json.loads(fh.metadata()["mitobench"])["weights_origin"]
    assert "trained by mitobench" in origin and "fold weights (0, 1)" in origin
    (results / "runs" / "copy").mkdir()
    (results / "runs" / "copy" / "run.json").write_text("{}")
    code, _, err = cli("export", results, "--out", tmp_path / "c.safetensors")
    assert code == 2 and "2 runs" in err and str(run) in err


def test_a_failed_job_is_recorded_and_the_rest_go_on(separable_root: Path, tmp_path: Path) -> None:
    grid = tiny_grid(
        runs=[{"model": "resnet10t", "modes": ["e2e"]}, {"model": "uni", "modes": ["lora"]}],
        weights={"uni": str(tmp_path / "no-such-weights")},
    )
    result = run_grid(grid, tmp_path / "results", separable_root, job_overrides={"pretrained": False})
    assert len(result.done) == 2
    assert set(result.failed) == {"uni/lora/cpu/fold_0", "uni/lora/cpu/fold_1"}
    jobs = ResultsStore(tmp_path / "results").jobs().set_index("job")
    assert jobs.loc["uni/lora/cpu/fold_0", "status"] == "failed"
    assert "does not exist" in jobs.loc["uni/lora/cpu/fold_0", "error"]


def _hammer(path: str, worker: int) -> None:
    store = ResultsStore(Path(path))
    for i in range(15):
        job = f"w{worker}/j{i}"
        store.start(
            job, {"model": "m", "mode": "e2e", "preset": "p", "fold": i, "spec": {}, "environment": {}}
        )
        store.fail(job, "x")


def _open_at_once(root: str, barrier, rounds: int) -> None:
    for r in range(rounds):
        barrier.wait()  # every process opens the same new store at the same moment
        ResultsStore(Path(root) / f"r{r}").start(
            f"j{r}-{id(barrier)}",
            {"model": "m", "mode": "e2e", "preset": "p", "fold": 0, "spec": {}, "environment": {}},
        )


def test_processes_opening_a_new_store_at_once_all_get_it(tmp_path: Path) -> None:
    """Switching a new store to WAL needs the file to itself and SQLite answers "locked" without
    waiting: every opener waits its turn instead of failing (seen under CI load)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_open_at_once, args=(str(tmp_path), barrier, 8)) for _ in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    assert all(len(ResultsStore(tmp_path / f"r{r}").jobs()) >= 1 for r in range(8))


def test_two_processes_write_the_store_at_once(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(tmp_path), w)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    assert len(ResultsStore(tmp_path).jobs()) == 30


def test_packaged_configs_are_valid() -> None:
    paper = load_grid("paper")
    specs = paper.run_specs()
    assert len(specs) == 17 and {s.mode for s in specs} == {"e2e", "probe", "lora"}
    assert all(s.preset == "paper" for s in specs)
    cpu = load_grid("cpu")
    assert {(s.model, s.mode) for s in cpu.run_specs()} == {
        (f"tf_efficientnet_lite{i}", m) for i in range(3) for m in ("e2e", "probe")
    }
    quick = load_grid("quick")
    assert quick.folds == [0, 1]
    (first,) = quick.run_specs()  # the README's first command: cpu-best shortened (docs/recipes.md)
    recipe = first.resolved()
    assert (first.model, first.mode, first.preset) == ("tf_efficientnet_lite0", "e2e", "cpu-best")
    settings = (recipe.input_size, recipe.max_epochs, recipe.soft_labels, recipe.ema_decay)
    assert settings == (96, 4, True, 0.99)
    best = load_grid("cpu-best").run_specs()
    assert [(s.model, s.mode, s.preset) for s in best] == [("tf_efficientnet_lite0", "e2e", "cpu-best")]
    assert load_grid("cpu-lite0").run_specs()[0] == cpu.run_specs()[0]


def test_killed_run_finishes_on_rerun(separable_root: Path, tmp_path: Path) -> None:
    """Kill `mitobench run` mid-job (SIGKILL), rerun it, and the grid completes."""
    config = tmp_path / "grid.yaml"
    train = {**TINY_TRAIN, "max_epochs": 4, "epoch_size": 600}
    config.write_text(
        yaml.safe_dump(
            {
                "name": "kill",
                "preset": "cpu",
                "folds": [0],
                "train": train,
                "runs": [{"model": "tf_efficientnet_lite0", "modes": ["e2e"]}],
            }
        )
    )
    results = tmp_path / "results"
    cmd = [
        sys.executable,
        "-m",
        "mitobench.cli",
        "run",
        str(config),
        "--results",
        str(results),
        "--data-root",
        str(separable_root),
        "--no-report",
    ]
    env = {**os.environ}
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    last = results / "runs" / "tf_efficientnet_lite0-e2e-cpu" / "fold_0" / "last.pt"
    deadline = time.time() + 500
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert last.exists(), proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 done" in done.stdout
    jobs = ResultsStore(results).jobs()
    assert list(jobs["status"]) == ["done"]


@pytest.mark.parametrize("bad", ["nonexistent.yaml"])
def test_bad_config_is_a_user_error(cli, bad: str) -> None:
    code, _, err = cli("run", bad)
    assert code == 2 and "no such config" in err and "Traceback" not in err


def test_a_store_made_before_folds_were_recorded_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    con = sqlite3.connect(tmp_path / "results.sqlite")
    con.execute(
        "CREATE TABLE jobs (job TEXT PRIMARY KEY, model TEXT, mode TEXT, preset TEXT, fold INTEGER,"
        " status TEXT, error TEXT, spec TEXT, environment TEXT, started REAL, finished REAL, seconds REAL)"
    )
    con.execute(
        "INSERT INTO jobs (job, model, mode, preset, fold, status) VALUES ('j', 'm', 'e2e', 'p', 0, 'done')"
    )
    con.commit()
    con.close()
    store = ResultsStore(tmp_path)
    fps = store.fold_fingerprints()
    assert list(fps.columns) == ["model", "mode", "preset", "train_data", "fold", "folds_sha256"]
    assert list(fps["train_data"]) == ["amibr/train"]  # jobs recorded before it was a setting
    assert fps["folds_sha256"].isna().all()  # unknown folds: never compared with the paper's per fold


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("name: g\nruns: []\n", "line 2: runs: List should have at least 1 item"),
        (
            "name: g\nweights: {uni: /models/uni}\nruns:\n  - {model: tf_efficientnet_lite0}\n",
            "line 2: weights: 'uni' is not a model of this grid's runs",
        ),
        (
            "name: g\nfolds: [0]\nfolds: [1]\nruns:\n  - {model: tf_efficientnet_lite0}\n",
            "line 3: key 'folds' is written twice",
        ),
    ],
)
def test_a_bad_grid_config_names_its_line(cli, tmp_path: Path, text: str, needle: str) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text(text)
    code, _, err = cli("run", config, "--results", tmp_path / "r", "--data-root", tmp_path)
    assert code == 2 and needle in err and str(config) in err.replace("\n", "") and "Traceback" not in err, (
        err
    )


@pytest.mark.parametrize("store", ["empty", "zero-bytes", "other-schema"])
def test_report_on_an_empty_or_foreign_store_says_so(cli, tmp_path: Path, store: str) -> None:
    import sqlite3

    results = tmp_path / "r"
    results.mkdir()
    path = results / "results.sqlite"
    if store == "empty":
        ResultsStore(results)
        needle = "holds no finished job"
    elif store == "zero-bytes":
        path.write_bytes(b"")
        needle = "holds no finished job"
    else:  # a store whose jobs table has other columns (another schema version)
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE jobs (job TEXT PRIMARY KEY, status TEXT, model_name TEXT)")
        con.execute("INSERT INTO jobs VALUES ('a', 'done', 'x')")
        con.commit()
        con.close()
        needle = "written by another mitobench version"
    code, _, err = cli("report", results, "--data-root", tmp_path)
    assert code == 2 and needle in err.replace("\n", "") and "Traceback" not in err, err


def test_an_intact_store_on_a_read_only_disk_is_not_called_broken(tmp_path: Path, monkeypatch) -> None:
    """SQLite's 'attempt to write a readonly database' means the disk, not the store: the message
    says so and does not advise rebuilding it."""
    import sqlite3

    from mitobench.errors import StorageError

    store = ResultsStore(tmp_path)
    real = sqlite3.connect

    class ReadOnly(sqlite3.Connection):
        def execute(self, sql, *args):
            if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "CREATE", "ALTER")):
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return super().execute(sql, *args)

    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real(*a, **k, factory=ReadOnly))
    with pytest.raises(StorageError) as err:
        store.start(
            "job", {"model": "m", "mode": "e2e", "preset": "cpu", "fold": 0, "spec": {}, "environment": {}}
        )
    assert "cannot be written here" in err.value.message and "move it aside" not in err.value.fix
