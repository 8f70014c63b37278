"""The folds are the paper's on every scikit-learn: checked against the reference fold table,
which scikit-learn 1.7.2 computed from the scripts' own call."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.model_selection import StratifiedGroupKFold

from mitobench.data.registry import load
from mitobench.data.splits import PAPER_FOLDS_SHA256, assign_folds, fold_split, folds_fingerprint
from tests.conftest import REPO

REFERENCE_FOLDS = REPO.parent / "shared" / "reference" / "amibr_folds_sklearn_1.7.csv"


def _reference_table() -> pd.DataFrame:
    if not REFERENCE_FOLDS.is_file():
        pytest.skip(f"reference fold table not found at {REFERENCE_FOLDS}")
    return pd.read_csv(REFERENCE_FOLDS)


def test_paper_folds_equal_the_reference_table_fold_for_fold(real_root: Path, cli) -> None:
    table = _reference_table()
    code, out, _ = cli("data", "folds", "--data-root", real_root, "--json")
    assert code == 0
    got = {row["image"]: row["fold"] for row in json.loads(out)}
    assert got == dict(zip(table["dataset_uid"], table["fold"], strict=True))
    assert np.bincount(list(got.values())).tolist() == [592, 805, 451, 379, 667]


def test_the_pinned_fingerprint_is_the_reference_tables() -> None:
    table = _reference_table()
    assert folds_fingerprint(table["dataset_uid"].tolist(), table["fold"].to_numpy()) == PAPER_FOLDS_SHA256


def test_sklearn_split_is_what_the_installed_release_returns(real_root: Path, cli) -> None:
    df = pd.read_csv(real_root / "amibr_train_split.csv")
    labels = df["final_label"].map({"Atypical": 0, "Normal": 1}).tolist()
    skf = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=42)
    expected = {}
    for fold, (_, val_idx) in enumerate(skf.split(df["dataset_uid"], labels, df["slide"])):
        expected.update({df["dataset_uid"][i]: fold for i in val_idx})
    code, out, _ = cli("data", "folds", "--data-root", real_root, "--json", "--split", "sklearn")
    assert code == 0
    assert {row["image"]: row["fold"] for row in json.loads(out)} == expected
    if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) < (1, 8):  # the two agree there
        assert expected == dict(
            zip(_reference_table()["dataset_uid"], _reference_table()["fold"], strict=True)
        )


def test_every_slide_lies_in_one_fold(real_root: Path) -> None:
    train = load("amibr/train", real_root)
    for split in ("paper", "sklearn"):
        folds = assign_folds(train, split=split)
        per_slide = pd.Series(folds).groupby(train.groups).nunique()
        assert (per_slide == 1).all()
        assert sorted(np.unique(folds)) == [0, 1, 2, 3, 4]


def test_fold_split_partitions_the_rows(synth_root: Path) -> None:
    train = load("amibr/train", synth_root)
    folds = assign_folds(train)
    for k in range(5):
        tr, va = fold_split(folds, k)
        assert len(tr) + len(va) == len(train)
        assert not set(train.groups[tr]) & set(train.groups[va])


def test_fold_counts_add_up_to_the_training_split(real_root) -> None:
    """`data folds`' summary comes from the library: every figure in one fold, slides never shared."""
    from mitobench.data.registry import load
    from mitobench.data.splits import assign_folds, fold_counts

    train = load("amibr/train", real_root)
    rows = fold_counts(train, assign_folds(train))
    assert [r["fold"] for r in rows] == [0, 1, 2, 3, 4]
    assert sum(r["figures"] for r in rows) == 2894 and sum(r["atypical"] for r in rows) == 648
    assert sum(r["slides"] for r in rows) == len(set(train.groups))  # slide-grouped: no slide in two folds


def test_the_voted_sets_are_declared_by_the_datasets(synth_root) -> None:
    from mitobench.data.registry import DATASETS, voted_sets

    # the paper's sets (a dataset added later declares its own and needs no change here)
    paper = {"amibr": "all", "atnorm-br": None, "atnorm-md": "test"}
    assert {k: DATASETS[k].voted for k in paper} == paper
    assert voted_sets(synth_root) == ["amibr/all"]  # AtNorM-Br has no votes, AtNorM-MD is absent
