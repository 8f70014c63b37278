"""`--engine auto` on a CPU with native bf16: the two forms of a shipped model race once per
machine, on the CPU here for real (the small test run shipped into a temporary folder), and the
verdict is kept and reused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mitobench import verdicts
from mitobench.inference import engine_race
from mitobench.inference.shipped import DEFAULT_MODEL, ShippedModel

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture
def ship(ship_folder: Path) -> ShippedModel:
    return ShippedModel(DEFAULT_MODEL, ship_folder)


@pytest.mark.parametrize(
    ("seconds", "engine"),
    [({"pytorch": 0.006, "onnx": 0.008}, "pytorch"), ({"pytorch": 0.008, "onnx": 0.006}, "onnx"),
     ({"pytorch": 0.007, "onnx": 0.007}, "pytorch")],
)  # fmt: skip
def test_the_faster_engine_wins_and_pytorch_a_tie(seconds, engine) -> None:
    assert engine_race.faster(seconds) == engine


def test_the_race_runs_both_engines_here_and_its_verdict_is_kept(ship, monkeypatch) -> None:
    engine = engine_race.auto_engine(ship)
    path = engine_race.verdict_path(ship)
    verdict = json.loads(path.read_text())
    assert (
        engine
        == verdict["engine"]
        == engine_race.faster({k: 1 / v for k, v in verdict["patches_per_second"].items()})
    )
    assert set(verdict["patches_per_second"]) == {"pytorch", "onnx"}
    assert all(v > 0 for v in verdict["patches_per_second"].values())
    assert "native bf16" in verdict["machine"] and verdict["model"] == DEFAULT_MODEL

    def no_race(_):
        raise AssertionError("raced again although a verdict was kept")

    monkeypatch.setattr(engine_race, "race", no_race)
    assert engine_race.auto_engine(ship) == engine


@pytest.mark.parametrize("kept", ["{not json", '{"engine": "tensorrt"}', "[]"])
def test_an_unreadable_verdict_is_raced_again_and_replaced(ship, monkeypatch, kept) -> None:
    path = engine_race.verdict_path(ship)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(kept)
    monkeypatch.setattr(engine_race, "race", lambda s: {"engine": "onnx", "model": s.name})
    assert engine_race.auto_engine(ship) == "onnx"
    assert json.loads(path.read_text()) == {"engine": "onnx", "model": DEFAULT_MODEL}


def test_the_verdict_is_per_model_files_and_library_versions(ship, tmp_path, monkeypatch) -> None:
    import onnxruntime

    first = engine_race.verdict_path(ship)
    shutil.copytree(ship.folder, tmp_path, dirs_exist_ok=True)
    other = ShippedModel(DEFAULT_MODEL, tmp_path)
    (tmp_path / f"{DEFAULT_MODEL}.json").write_text('{"recipe": "another record, the same files"}')
    assert engine_race.verdict_path(other) == first  # the record is not what runs
    (tmp_path / f"{DEFAULT_MODEL}.onnx.json").write_text(
        json.dumps({**json.loads((tmp_path / f"{DEFAULT_MODEL}.onnx.json").read_text()), "threshold": 0.1})
    )
    assert engine_race.verdict_path(other) != first  # another sidecar: another ONNX model
    monkeypatch.setattr(onnxruntime, "__version__", "0.0.1")
    assert engine_race.verdict_path(ship) != first


def test_a_cache_that_cannot_be_written_still_classifies(ship, tmp_path, monkeypatch) -> None:
    """A read-only or misplaced cache (a file where the folder belongs) races on every call."""
    from mitobench.errors import StorageError

    calls = []
    monkeypatch.setattr(engine_race, "race", lambda s: calls.append(s.name) or {"engine": "onnx"})

    def refuse(path, text):
        raise StorageError(f"cannot write {path}", "check the folder's permissions")

    monkeypatch.setattr(verdicts, "atomic_write_text", refuse)
    assert engine_race.auto_engine(ship) == engine_race.auto_engine(ship) == "onnx"
    assert calls == [DEFAULT_MODEL, DEFAULT_MODEL]
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file")
    monkeypatch.setenv("MITOBENCH_CACHE", str(not_a_folder))
    assert engine_race.auto_engine(ship) == "onnx" and len(calls) == 3
