"""The three upstream datasets load with the paper's counts and carry their metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mitobench.data.registry import load


def test_amibr_splits_have_the_papers_counts(real_root: Path) -> None:
    train = load("amibr/train", real_root)
    test = load("amibr/test", real_root)
    assert train.summary() == {"n": 2894, "n_atypical": 648, "n_normal": 2246, "n_slides": 146}
    assert test.summary() == {"n": 826, "n_atypical": 184, "n_normal": 642, "n_slides": 56}
    assert not set(train.groups) & set(test.groups), "train and test must not share slides"
    assert not set(train.ids) & set(test.ids)


def test_amibr_train_keeps_the_csv_row_order(real_root: Path) -> None:
    import pandas as pd

    csv = pd.read_csv(real_root / "amibr_train_split.csv")
    train = load("amibr/train", real_root)
    assert train.ids == csv["dataset_uid"].tolist()
    assert (train.labels == (csv["final_label"] == "Atypical").astype(int)).all()


def test_amibr_samples_carry_votes_subtypes_and_source(real_root: Path) -> None:
    ds = load("amibr/test", real_root)
    f = ds.frame
    assert {"vote_1", "vote_2", "vote_3", "majority", "subtype_1", "subtype_2", "source"} <= set(f)
    assert set(f["source"]) == {"MIDOG21", "TUPAC16"}
    # atypical is the positive class: the folder label equals the experts' majority
    assert (f["majority"] == f["label"]).all()
    assert f.loc[f["label"] == 1, "subtype_1"].str.startswith("AMF").mean() > 0.5


def test_atnorm_md_has_five_expert_votes(real_root: Path) -> None:
    ds = load("atnorm-md", real_root)
    assert ds.key == "atnorm-md/test"
    assert ds.summary() == {"n": 2107, "n_atypical": 219, "n_normal": 1888, "n_slides": None}
    votes = ds.frame[[f"vote_{i}" for i in range(1, 6)]].to_numpy()
    assert votes.shape == (2107, 5) and set(np.unique(votes)) == {0, 1}
    assert (ds.frame["majority"] == ds.labels).all()


def test_atnorm_br_loads_like_atnorm_md(synth_root: Path) -> None:
    ds = load("atnorm-br", synth_root)
    assert ds.key == "atnorm-br/test"
    assert ds.summary() == {"n": 8, "n_atypical": 3, "n_normal": 5, "n_slides": None}
    assert ds.frame["group"].isna().all()


def test_data_info_json_reports_counts(real_root: Path, cli) -> None:
    code, out, err = cli("data", "info", "--data-root", real_root, "--json")
    assert code == 0
    info = json.loads(out)
    assert info["amibr/train"]["n"] == 2894 and info["amibr/train"]["n_slides"] == 146
    assert info["amibr/test"]["n_atypical"] == 184 and info["amibr/test"]["n_normal"] == 642
    assert info["atnorm-md/test"]["n_normal"] == 1888
    assert info["amibr/test"]["image_size"] == ["128x128"]
    if not (real_root / "AtNorM-Br").exists():
        assert "AtNorM-Br" in err  # says which datasets are missing


def test_data_root_from_environment(synth_root: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MITOBENCH_DATA", str(synth_root))
    code, out, _ = cli("data", "info", "--json")
    assert code == 0
    assert json.loads(out)["atnorm-br/test"]["n"] == 8


def test_unknown_dataset_name_is_a_user_error(synth_root: Path) -> None:
    from mitobench.errors import DataError

    with pytest.raises(DataError, match="unknown dataset"):
        load("amibrr/test", synth_root)
    with pytest.raises(DataError, match="no split"):
        load("atnorm-br/train", synth_root)
