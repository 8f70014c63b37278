"""`export` and `evaluate` on damaged or unfinished run folders: one message naming the file or
fold and the fix, never a traceback, never a silently smaller ensemble."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from safetensors.torch import load_file


@pytest.fixture
def run(trained_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    return copy


def _bundle_folds(path: Path) -> set[str]:
    return {k.split(".", 1)[0] for k in load_file(str(path)) if k.startswith("fold")}


def test_a_stray_folder_beside_the_folds_is_not_a_fold(run: Path, tmp_path: Path, cli) -> None:
    shutil.copytree(run / "fold_0", run / "fold_0_old")
    code, _, err = cli("export", run, "--out", tmp_path / "b.safetensors")
    assert code == 0, err
    code, _, err = cli("evaluate", run)
    assert code == 0 and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("truncate-weights", "fold 1's weights cannot be read"),
        ("delete-weights", "fold 1's weights cannot be read"),
        ("damage-done", "done.json is damaged"),
    ],
)
def test_a_damaged_fold_is_one_message(run: Path, tmp_path: Path, cli, damage: str, needle: str) -> None:
    best, done = run / "fold_1" / "best.safetensors", run / "fold_1" / "done.json"
    if damage == "truncate-weights":
        best.write_bytes(best.read_bytes()[: best.stat().st_size // 2])
    elif damage == "delete-weights":
        best.unlink()
    else:
        done.write_text(done.read_text()[:20])
    code, _, err = cli("export", run, "--out", tmp_path / "b.safetensors")
    assert code == 2 and needle in err.replace("\n", "") and "fold_1" in err and "Traceback" not in err, err
    assert not (tmp_path / "b.safetensors").exists()


def test_export_refuses_a_run_with_unfinished_folds_unless_told_which(run: Path, tmp_path: Path, cli) -> None:
    unfinished = run / "fold_2"
    unfinished.mkdir()
    (unfinished / "last.pt").write_bytes(b"an interrupted fold")
    code, _, err = cli("export", run, "--out", tmp_path / "b.safetensors")
    assert code == 2 and "fold(s) [2] are not finished" in err and "--folds 0,1" in err, err
    code, _, err = cli("export", run, "--out", tmp_path / "b.safetensors", "--folds", "0,1")
    assert code == 0, err
    assert _bundle_folds(tmp_path / "b.safetensors") == {"fold0", "fold1"}
    code, _, err = cli("export", run, "--out", tmp_path / "c.safetensors", "--folds", "2")
    assert code == 2 and "fold 2 is not finished" in err, err


def test_a_run_whose_scores_cannot_be_kept_is_still_described(trained_run, tmp_path, monkeypatch) -> None:
    """Scores are cached in each fold's scores.json; where that cannot be written (a read-only
    results folder) they are computed and used, not kept, and nothing fails."""
    import mitobench.runs.rundir as rundir
    from mitobench.errors import StorageError
    from mitobench.inference.bundle import describe_model

    copy = tmp_path / "run"
    shutil.copytree(trained_run, copy)
    for f in copy.glob("fold_*/scores.json"):
        f.unlink()
    real = rundir._write_json

    def read_only(path: Path, value: dict) -> None:
        if path.name == "scores.json":
            raise StorageError(f"{path}: read-only file system", "")
        real(path, value)

    monkeypatch.setattr(rundir, "_write_json", read_only)
    info = describe_model(copy)
    assert info["figures"]["atnorm-md/test"]["folds"] == 2
    assert not list(copy.glob("fold_*/scores.json"))
    monkeypatch.setattr(rundir, "_write_json", real)
    assert describe_model(copy)["figures"] == info["figures"]  # the same numbers once they are kept
    assert len(list(copy.glob("fold_*/scores.json"))) == 2
