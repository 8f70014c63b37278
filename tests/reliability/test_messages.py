"""Faults that used to end in a traceback or a wrong message: one line naming the thing, a fix,
exit status 2 — checked before any work where the fault is in the command line."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import numpy as np
import pytest

from mitobench.benchmark.runner import run_grid
from tests.conftest import tiny_grid


def _patches(folder: Path) -> Path:
    from tests.conftest import write_png

    for i in range(3):
        write_png(folder / "patches" / f"{i}.png", seed=i)
    return folder / "patches"


def _one_error(err: str, *needles: str) -> None:
    assert "Traceback" not in err
    assert sum(line.startswith("error:") for line in err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert "fix:" in err


@pytest.fixture
def results(tiny_results: tuple[Path, Path]) -> Path:
    """The session's tiny grid (two e2e folds); tests that break it copy it first."""
    return tiny_results[0]


def test_a_corrupt_results_store_says_how_to_rebuild_it(results: Path, tmp_path: Path, cli) -> None:
    broken = tmp_path / "results"
    shutil.copytree(results, broken)
    (broken / "results.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (broken / f"results.sqlite{suffix}").unlink(missing_ok=True)
    code, _, err = cli("report", broken, "--data-root", tmp_path)
    assert code == 2
    _one_error(err, "not a readable results store", "without retraining")


def test_the_store_is_rebuilt_from_the_runs_without_retraining(results: Path, tmp_path: Path) -> None:
    from mitobench.benchmark.store import ResultsStore
    from tests.conftest import make_amibr

    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    (copy / "results.sqlite").unlink()
    best = copy / "runs" / "resnet10t-e2e-cpu" / "fold_0" / "best.safetensors"
    before = best.stat().st_mtime_ns
    root = make_amibr(tmp_path / "data", n_slides=10, per_slide=12, n_test_slides=3, separable=True)
    outcome = run_grid(tiny_grid(runs=[{"model": "resnet10t", "modes": ["e2e"]}]), copy, root)
    assert len(outcome.done) == 2 and best.stat().st_mtime_ns == before  # recorded, not retrained
    assert set(ResultsStore(copy).jobs()["status"]) == {"done"}


@pytest.mark.parametrize("where", ["export", "cache", "report"])
def test_a_full_disk_is_one_message_and_keeps_the_old_file(
    where: str, results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    run = results / "runs" / "resnet10t-e2e-cpu"
    if where == "export":
        from mitobench.inference import bundle

        monkeypatch.setattr(bundle, "save_file", full)
        target = tmp_path / "old.safetensors"
        target.write_bytes(b"previous bundle")
        code, _, err = cli("export", run, "--out", target, "--overwrite")
        assert target.read_bytes() == b"previous bundle"
    elif where == "cache":
        monkeypatch.setattr(np, "save", full)
        code, _, err = cli("predict", run, _patches(tmp_path), "--out", tmp_path / "p.csv")
    else:
        import matplotlib.figure

        monkeypatch.setattr(matplotlib.figure.Figure, "savefig", full)
        code, _, err = cli("report", results, "--data-root", tmp_path, "--bootstrap", "10")
    assert code == 2
    _one_error(err, "no space left on the device")


def test_predict_to_a_folder_is_refused_before_any_work(results: Path, tmp_path: Path, cli) -> None:
    code, _, err = cli("predict", results / "runs" / "resnet10t-e2e-cpu", tmp_path, "--out", tmp_path)
    assert code == 2
    _one_error(err, f"--out {tmp_path} is a folder")


def test_train_out_and_download_root_that_are_files(tmp_path: Path, cli) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    code, _, err = cli("train", "--model", "tf_efficientnet_lite0", "--out", a_file, "--data-root", tmp_path)
    assert code == 2
    _one_error(err, f"the run folder (--out) {a_file} is a file")
    code, _, err = cli("data", "download", "--data-root", a_file, "--url", "file:///nonexistent.zip")
    assert code == 2
    _one_error(err, f"the data root {a_file} is a file")


def test_a_cache_variable_that_names_a_file(
    results: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    a_file = tmp_path / "cache"
    a_file.write_text("x")
    monkeypatch.setenv("MITOBENCH_CACHE", str(a_file))
    run = results / "runs" / "resnet10t-e2e-cpu"
    code, _, err = cli("predict", run, _patches(tmp_path), "--out", tmp_path / "p.csv")
    assert code == 2
    _one_error(err, f"$MITOBENCH_CACHE ({a_file}) is a file, not a folder", "set MITOBENCH_CACHE")


def test_a_truncated_metadata_file(synth_root: Path, cli) -> None:
    meta = synth_root / "AMI-BR.csv"
    meta.write_bytes(meta.read_bytes()[: len(meta.read_bytes()) * 2 // 3])
    code, _, err = cli("data", "folds", "--data-root", synth_root)
    assert code == 2
    _one_error(err, "AMI-BR.csv: line", "a truncated file?", "re-download")


def test_a_data_root_that_is_a_file(tmp_path: Path, cli) -> None:
    a_file = tmp_path / "root"
    a_file.write_text("x")
    code, _, err = cli("data", "info", "--data-root", a_file)
    assert code == 2
    _one_error(err, "is a file, not a folder")
    assert "does not exist" not in err


def test_a_problem_in_your_csv_does_not_say_re_download(tmp_path: Path, cli) -> None:
    csv = tmp_path / "mine.csv"
    csv.write_text("path,label\nmissing.png,1\n")
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--train-data", csv, "--data-root", tmp_path
    )
    assert code == 2
    _one_error(err, "missing.png")
    assert "re-download" not in err
    csv.write_text("path,label\na.png,1\nb.png\n")
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--train-data", csv, "--data-root", tmp_path
    )
    assert code == 2
    _one_error(err, "line 3 has no label", "fix your CSV")
    assert "re-download" not in err


def test_a_cache_variable_that_cannot_be_made_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mitobench.errors import StorageError
    from mitobench.paths import cache_dir

    a_file = tmp_path / "f"
    a_file.write_text("x")
    monkeypatch.setenv("MITOBENCH_CACHE", str(a_file / "cache"))
    with pytest.raises(StorageError) as err:
        cache_dir()
    assert "$MITOBENCH_CACHE" in err.value.message and "cannot be made or written" in err.value.message
    assert "MITOBENCH_CACHE" in err.value.fix


def test_a_run_from_a_newer_mitobench_says_newer_and_an_older_one_older() -> None:
    from mitobench.errors import ConfigError
    from mitobench.recipes.config import train_config
    from mitobench.runs.spec import saved_settings

    spec = {"model": "tf_efficientnet_lite0"}
    cfg = train_config("e2e", "cpu").model_dump(mode="json")
    with pytest.raises(ConfigError) as newer:
        saved_settings(spec, {**cfg, "a_knob_from_the_future": 1}, "run.json")
    assert "a newer mitobench" in newer.value.message and "upgrade" in newer.value.fix
    with pytest.raises(ConfigError) as older:
        saved_settings(spec, {**cfg, "lr": "fast"}, "run.json")
    assert "an older mitobench" in older.value.message


def test_a_users_fold_column_may_name_folds_beyond_the_papers_five() -> None:
    from mitobench.errors import ConfigError
    from mitobench.runs.spec import parse_spec

    assert parse_spec(
        {"model": "tf_efficientnet_lite0", "train_data": "lab=lab.csv", "folds": [5]}
    ).folds == [5]
    with pytest.raises(ConfigError, match="fold 5 does not exist"):
        parse_spec({"model": "tf_efficientnet_lite0", "folds": [5]})
    with pytest.raises(ConfigError, match="no fold selected"):
        parse_spec({"model": "tf_efficientnet_lite0", "folds": []})


def test_predict_to_a_folder_that_cannot_be_made_is_refused_before_any_work(
    results: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mitobench.inference.bundle as bundle_mod

    a_file = tmp_path / "f"
    a_file.write_text("x")
    monkeypatch.setattr(bundle_mod, "load_model", lambda p: pytest.fail("the model was loaded"))
    out = a_file / "p.csv"
    code, _, err = cli("predict", results / "runs" / "resnet10t-e2e-cpu", tmp_path, "--out", out)
    assert code == 2
    _one_error(err, f"the folder of --out {a_file} is a file, not a folder")


@pytest.mark.parametrize("command", ["export", "predict"])
def test_an_existing_output_is_never_replaced_silently(
    command: str, results: Path, tmp_path: Path, cli
) -> None:
    run = results / "runs" / "resnet10t-e2e-cpu"
    out = tmp_path / ("b.safetensors" if command == "export" else "p.csv")
    out.write_bytes(b"an earlier result")
    args = ["export", run] if command == "export" else ["predict", run, _patches(tmp_path)]
    code, _, err = cli(*args, "--out", out)
    assert code == 2 and out.read_bytes() == b"an earlier result"
    _one_error(err, f"--out {out} exists", "--overwrite")
    code, _, err = cli(*args, "--out", out, "--overwrite")
    assert code == 0 and out.read_bytes() != b"an earlier result", err


LONG = "x" * 300  # more than any common file system's 255-byte name limit


@pytest.mark.parametrize("command", ["predict", "export", "train", "report", "run"])
def test_an_output_path_too_long_for_the_file_system_is_refused_before_any_work(
    command: str, results: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mitobench.inference.bundle as bundle_mod

    monkeypatch.setattr(bundle_mod, "load_model", lambda p: pytest.fail("the model was loaded"))
    run = results / "runs" / "resnet10t-e2e-cpu"
    args = {
        "predict": ["predict", run, _patches(tmp_path), "--out", tmp_path / f"{LONG}.csv"],
        "export": ["export", run, "--out", tmp_path / LONG / "m.safetensors"],
        "train": ["train", "--model", "resnet10t", "--out", tmp_path / LONG],
        "report": ["report", tmp_path / LONG],
        "run": ["run", "quick", "--results", tmp_path / LONG],
    }[command]
    code, _, err = cli(*args)
    assert code == 2, err
    _one_error(err, "this file system allows" if command != "report" else "too long")
    assert not any(p.name.startswith("x") for p in tmp_path.iterdir())  # nothing was made


def test_a_name_near_the_limit_is_still_written_atomically(tmp_path: Path) -> None:
    """The temporary file beside the target must not need more name than the target itself."""
    from mitobench.paths import atomic_write_text

    target = tmp_path / ("n" * 250)
    atomic_write_text(target, "complete")
    assert target.read_text() == "complete" and [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize(
    ("setting", "needle"),
    [
        ("lr=nan", "lr"),
        ("weight_decay=inf", "weight_decay"),
        ("min_lr=.inf", "min_lr"),
        ("focal_gamma=-.inf", "focal_gamma"),
        ("warmup_epochs=inf", "warmup_epochs"),
        ("input_size=100000", "input_size"),
        ("batch_size=1000000000", "batch_size"),
        ("eval_batch_size=0", "eval_batch_size"),
        ("seed=-1", "seed"),
        ("input.std=[0, 1, 1]", "input.std"),
        ("lora.r=0", "lora.r"),
        ("lora.dropout=nan", "lora.dropout"),
        ("probe.c_grid=[1, .inf]", "probe.c_grid"),
    ],
)
def test_every_numeric_training_setting_is_range_checked(
    setting: str, needle: str, tmp_path: Path, cli
) -> None:
    """NaN, infinity and sizes that could only exhaust memory are refused before any data is read."""
    code, _, err = cli("train", "--model", "resnet10t", "--out", tmp_path / "r", "--set", setting)
    assert code == 2, err
    _one_error(err, needle)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("value", ["0", "100000", "-3", "many"])
def test_threads_from_the_option_or_the_environment_are_range_checked(
    value: str, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = cli("--threads", value, "models", "list")
    assert code == 2 and "--threads" in err and "Traceback" not in err, err
    monkeypatch.setenv("MITOBENCH_THREADS", value)
    code, _, err = cli("models", "list")
    assert code == 2, err
    _one_error(err, "MITOBENCH_THREADS", "from 1 to 1024")


def test_an_unknown_malloc_mode_is_one_message(cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MITOBENCH_MALLOC", "[red]jemalloc")
    code, _, err = cli("models", "list")
    assert code == 2, err
    _one_error(err, "MITOBENCH_MALLOC", "'[red]jemalloc'", "tuned, system")


def test_a_grid_with_non_finite_resources_is_refused(tmp_path: Path, cli) -> None:
    grid = tmp_path / "g.yaml"
    grid.write_text("runs:\n  - model: resnet10t\nresources:\n  num_cpus: .nan\n")
    code, _, err = cli("run", grid, "--results", tmp_path / "r")
    assert code == 2, err
    _one_error(err, "num_cpus")


def test_an_unknown_model_is_refused_before_any_data_is_fetched(tmp_path: Path, cli) -> None:
    """`train`, `run` and `distil` name a mistyped model before they look for data: with an empty
    data root they would otherwise start a download (and `run` would record a failed job)."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        "name: typo\npreset: cpu\nfolds: [0]\nruns:\n  - {model: tf_efficientnet_lite9, modes: [e2e]}\n"
    )
    code, _, err = cli("train", "--model", "nosuchmodel", "--folds", "0", "--data-root", empty,
                       "--out", tmp_path / "run")  # fmt: skip
    assert code == 2
    _one_error(err, "unknown model 'nosuchmodel'", "mitobench models list")
    code, _, err = cli("run", grid, "--results", tmp_path / "results", "--data-root", empty)
    assert code == 2
    _one_error(err, "unknown model 'tf_efficientnet_lite9'", "did you mean tf_efficientnet_lite")
    code, _, err = cli("distil", "--teachers", "quick", "--student-model", "nosuchmodel",
                       "--results", tmp_path / "distil", "--data-root", empty)  # fmt: skip
    assert code == 2
    _one_error(err, "unknown model 'nosuchmodel'")
    assert not any(p.exists() for p in (tmp_path / "run", tmp_path / "results", tmp_path / "distil"))
    assert list(empty.iterdir()) == []  # nothing fetched
