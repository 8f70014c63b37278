"""The folds are identical to the reference code's StratifiedGroupKFold split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from mitobench.data.registry import load
from mitobench.data.splits import assign_folds, fold_split


def _reference_folds(csv: Path) -> dict[str, int]:
    """The reference scripts' split, written the way they write it."""
    df = pd.read_csv(csv)
    labels = df["final_label"].map({"Atypical": 0, "Normal": 1}).tolist()
    images = df["dataset_uid"].tolist()
    groups = df["slide"].tolist()
    skf = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=42)
    out = {}
    for fold, (_, val_idx) in enumerate(skf.split(images, labels, groups)):
        for i in val_idx:
            out[images[i]] = fold
    return out


def test_folds_match_scikit_learn_on_the_real_csv(real_root: Path, cli) -> None:
    expected = _reference_folds(real_root / "amibr_train_split.csv")
    code, out, _ = cli("data", "folds", "--data-root", real_root, "--json")
    assert code == 0
    got = {row["image"]: row["fold"] for row in json.loads(out)}
    assert got == expected
    assert len(got) == 2894


def test_every_slide_lies_in_one_fold(real_root: Path) -> None:
    train = load("amibr/train", real_root)
    folds = assign_folds(train)
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
