"""Training on a user's own labelled data: slide-grouped, stratified or user-given folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mitobench.data.custom import load_csv
from mitobench.data.splits import training_folds
from mitobench.errors import DataError
from tests.conftest import TINY_ARGS


def _lab_csv(root: Path, tmp_path: Path, with_group: bool = True, fold: bool = False) -> Path:
    """A CSV over the separable AMi-Br images, as a lab would write it (relative paths)."""
    meta = pd.read_csv(root / "amibr_train_split.csv")
    rows = pd.DataFrame(
        {
            "path": [
                f"{root}/AMi-Br/{c}/{u}"
                for c, u in zip(meta["final_label"], meta["dataset_uid"], strict=True)
            ],
            "label": meta["final_label"],
        }
    )
    if with_group:
        rows["group"] = meta["slide"]
    if fold:
        rows["fold"] = [i % 3 for i in range(len(rows))]
    path = tmp_path / "lab.csv"
    rows.to_csv(path, index=False)
    return path


def test_train_on_a_csv_and_evaluate_on_named_and_custom_sets(
    separable_root: Path, tmp_path: Path, cli
) -> None:
    csv = _lab_csv(separable_root, tmp_path)
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "0",
        "--train-data", f"lab={csv}", "--eval", "amibr/test", "--eval", separable_root / "AtNorM-MD",
        "--data-root", separable_root, "--out", out, *TINY_ARGS,
    )  # fmt: skip
    assert code == 0, err
    record = json.loads((out / "run.json").read_text())
    assert record["spec"]["train_data"] == f"lab={csv}"
    assert record["folds"]["split"] == "paper"  # grouped by the CSV's slides
    files = {p.name for p in (out / "fold_0" / "predictions").iterdir()}
    md = [f for f in files if f.startswith("AtNorM-MD-")]  # unnamed: the folder's name + a path hash
    assert files == {"lab__val.csv", "amibr__test.csv", *md} and len(md) == 1


def test_a_fold_column_is_the_users_split(separable_root: Path, tmp_path: Path, cli) -> None:
    csv = _lab_csv(separable_root, tmp_path, fold=True)
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "2",
        "--train-data", f"lab={csv}", "--eval", "amibr/test", "--data-root", separable_root, "--out", out,
        *TINY_ARGS,
    )  # fmt: skip
    assert code == 0, err
    table = pd.read_csv(csv)
    val = pd.read_csv(out / "fold_2" / "predictions" / "lab__val.csv")
    assert sorted(val["id"]) == sorted(table.loc[table["fold"] == 2, "path"])
    assert json.loads((out / "run.json").read_text())["folds"]["split"] == "column"
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "4",
        "--train-data", f"lab={csv}", "--data-root", separable_root, "--out", tmp_path / "r4", *TINY_ARGS,
    )  # fmt: skip
    assert code == 2 and "has no fold 4" in err


def test_without_groups_the_folds_are_stratified(separable_root: Path, tmp_path: Path) -> None:
    ds = load_csv(_lab_csv(separable_root, tmp_path, with_group=False))
    folds, how = training_folds(ds)
    assert how == "stratified"
    for k in range(5):
        share = ds.labels[folds == k].mean()
        assert abs(share - ds.labels.mean()) < 0.1


def test_too_few_slides_of_a_class_is_refused(separable_root: Path, tmp_path: Path) -> None:
    csv = _lab_csv(separable_root, tmp_path)
    table = pd.read_csv(csv)
    atypical = table["label"] == "Atypical"
    table.loc[atypical, "group"] = np.where(np.arange(atypical.sum()) % 2, "s1", "s2")
    table.to_csv(csv, index=False)
    with pytest.raises(DataError, match="the atypical class has 2 slides"):
        training_folds(load_csv(csv))


def test_a_fold_of_one_class_is_refused_before_any_training(
    separable_root: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fold column that puts each class in its own fold: refused at once, naming the fold and
    the missing class — not after a minute of training, looking for a checkpoint."""
    from mitobench.train import run as run_mod

    csv = _lab_csv(separable_root, tmp_path)
    table = pd.read_csv(csv)
    table["fold"] = (table["label"] == "Atypical").astype(int)  # fold 1 atypical only, fold 0 normal only
    table.to_csv(csv, index=False)
    monkeypatch.setattr(run_mod, "_load", lambda *a, **k: pytest.fail("images were loaded"))
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "1",
        "--train-data", f"lab={csv}", "--data-root", separable_root, "--out", tmp_path / "r", *TINY_ARGS,
    )  # fmt: skip
    assert code == 2 and "fold 1's validation set holds no normal figure" in err and "Traceback" not in err, (
        err
    )


def test_one_image_listed_twice_is_found_by_content(separable_root: Path, tmp_path: Path) -> None:
    """Two spellings of one path, or two copies of one file: refused, naming both."""
    import shutil

    csv = _lab_csv(separable_root, tmp_path)
    table = pd.read_csv(csv)
    first = Path(table.loc[0, "path"])
    copy = tmp_path / "copy.png"
    shutil.copy(first, copy)
    twice = pd.concat([table, pd.DataFrame({"path": [str(copy)], "label": [table.loc[0, "label"]],
                                            "group": [table.loc[0, "group"]]})])  # fmt: skip
    twice.to_csv(csv, index=False)
    with pytest.raises(DataError, match=r"are the same image \(identical content\)") as err:
        load_csv(csv)
    assert str(first) in err.value.message and str(copy) in err.value.message


def test_an_evaluation_set_overlapping_the_training_data_is_refused_unless_allowed(
    separable_root: Path, tmp_path: Path, cli
) -> None:
    csv = _lab_csv(separable_root, tmp_path)
    table = pd.read_csv(csv)
    evals = tmp_path / "ev.csv"
    table.iloc[:5].to_csv(evals, index=False)  # five training images in the evaluation set
    args = ["train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "0",
            "--train-data", f"lab={csv}", "--eval", f"ev={evals}", "--data-root", separable_root,
            "--out", tmp_path / "r", *TINY_ARGS]  # fmt: skip
    code, _, err = cli(*args)
    assert (
        code == 2 and "ev/all shares 5 image(s) with the training data" in err and "--allow-overlap" in err
    ), err
    assert not (tmp_path / "r").exists()
    code, _, err = cli(*args, "--allow-overlap")
    assert code == 0, err
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["eval_overlap"] == {"ev/all": 5} and record["spec"]["allow_overlap"] is True


def test_your_own_data_alone_never_triggers_a_download(
    separable_root: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Training and evaluation sets of your own and no data root: nothing is fetched."""
    import mitobench.data.download as download_mod

    csv = _lab_csv(separable_root, tmp_path)
    table = pd.read_csv(csv)
    held_out = table["group"].isin(sorted(table["group"].unique())[:2])
    table[~held_out].to_csv(csv, index=False)
    evals = tmp_path / "ev.csv"
    table[held_out].to_csv(evals, index=False)
    monkeypatch.setenv("MITOBENCH_DATA", str(tmp_path / "no-data-here"))
    monkeypatch.setattr(download_mod, "download", lambda *a, **k: pytest.fail("a download was started"))
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--preset", "cpu", "--folds", "0",
        "--train-data", f"lab={csv}", "--eval", f"ev={evals}", "--out", tmp_path / "r", *TINY_ARGS,
    )  # fmt: skip
    assert code == 0 and "fetching" not in err, err
