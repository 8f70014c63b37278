"""predict on a run equals predict on its exported bundle; evaluate adds datasets to a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

TINY = {"input_size": 32, "batch_size": 16, "max_epochs": 2, "lr": 3e-3, "precision": "fp32"}


@pytest.fixture
def run_dir(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the session's tiny run (trained once per test session), free to change."""
    shutil.copytree(trained_run, tmp_path / "run")
    return tmp_path / "run"


def test_bundle_predicts_like_the_run(run_dir: Path, separable_root: Path, tmp_path: Path, cli) -> None:
    patches = separable_root / "AtNorM-Br"
    code, out, err = cli("predict", run_dir, patches, "--out", tmp_path / "from_run.csv")
    assert code == 0, err
    code, out, err = cli("export", run_dir, "--out", tmp_path / "bundle.safetensors")
    assert code == 0 and "2 fold model(s)" in out, err
    shutil.rmtree(run_dir)  # the bundle must not need the run
    code, out, err = cli(
        "predict", tmp_path / "bundle.safetensors", patches, "--out", tmp_path / "from_bundle.csv"
    )
    assert code == 0, err
    a = pd.read_csv(tmp_path / "from_run.csv")
    b = pd.read_csv(tmp_path / "from_bundle.csv")
    assert list(a.columns[:3]) == ["id", "probability", "label"]
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == 30 and set(a["label"]) <= {"Atypical", "Normal"}
    truth = a["id"].str.startswith("Atypical")
    assert ((a["label"] == "Atypical") == truth).mean() > 0.7


def test_predict_from_a_csv(run_dir: Path, separable_root: Path, tmp_path: Path, cli) -> None:
    files = sorted((separable_root / "AtNorM-Br" / "Normal").glob("*.png"))[:3]
    pd.DataFrame({"path": [str(f) for f in files]}).to_csv(tmp_path / "in.csv", index=False)
    code, _, err = cli("predict", run_dir, tmp_path / "in.csv", "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert pd.read_csv(tmp_path / "p.csv")["id"].tolist() == [str(f) for f in files]


def test_evaluate_adds_a_custom_dataset(run_dir: Path, separable_root: Path, cli) -> None:
    code, _, err = cli("evaluate", run_dir, "--dataset", separable_root / "AtNorM-MD", "--tta")
    assert code == 0, err
    summary = json.loads((run_dir / "metrics.json").read_text())
    (key,) = [k for k in summary["sets"] if k.startswith("AtNorM-MD-")]  # named after the folder + path hash
    entry = summary["sets"][key]
    assert set(entry["per_fold"]) == {"0", "1"} and "tta" in entry and "ensemble" in entry


def test_not_a_bundle_is_a_user_error(tmp_path: Path, cli) -> None:
    (tmp_path / "x.safetensors").write_bytes(b"junk")
    (tmp_path / "p").mkdir()
    code, _, err = cli("predict", tmp_path / "x.safetensors", tmp_path / "p")
    assert code == 2 and "not a readable mitobench bundle" in err and "Traceback" not in err


def test_a_run_from_an_older_mitobench_is_a_clear_error(run_dir: Path, tmp_path: Path, cli) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    record["train_config"]["augment"] = {"hflip": True, "vflip": True}  # the old AugmentConfig
    (run_dir / "run.json").write_text(json.dumps(record))
    code, _, err = cli("export", run_dir, "--out", tmp_path / "b.safetensors")
    assert code == 2 and "written by an older mitobench" in err and "Traceback" not in err


def test_predict_says_when_it_resizes_patches_and_still_classifies_them(
    run_dir: Path, tmp_path: Path, real_patches, cli
) -> None:
    from PIL import Image

    folder, arrays = real_patches
    mixed = tmp_path / "mixed"
    shutil.copytree(folder, mixed)
    Image.fromarray(arrays[0]).resize((256, 256)).save(mixed / "zoomed.png")
    code, out, err = cli("predict", run_dir, mixed, "--out", tmp_path / "p.csv")
    assert code == 0, err
    assert f"{len(arrays) + 1} patches" in out
    assert f"warning: 1 of {len(arrays) + 1} patches are not 128x128 px (1 at 256x256" in " ".join(
        err.split()
    )
    code, _, err = cli("predict", run_dir, folder, "--out", tmp_path / "q.csv")
    assert code == 0 and "warning" not in err
