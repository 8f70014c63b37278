"""The paper's three datasets, read from the upstream layout of DeepMicroscopy/AMi-Br_Benchmark."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mitobench import ATYPICAL
from mitobench.data.dataset import Dataset, check_unique_ids
from mitobench.data.folders import images_by_class
from mitobench.errors import DataError

AMIBR_META = "AMI-BR.csv"
AMIBR_TRAIN = "amibr_train_split.csv"
AMIBR_EXPERTS = ("expert1", "expert2", "expert3")


TEXT_COLUMNS = ("id", "path", "slide", "detections", "group")
"""Read as text, never as numbers: ids like `007` keep their zeros."""
RELEASE_FIX = "re-download it: `mitobench data download --overwrite`"


def read_csv(path: Path, required: tuple[str, ...], fix: str = RELEASE_FIX) -> pd.DataFrame:
    """Read a CSV, naming the file and the problem: missing, unparsable, a required column
    missing or a row without a value in one (a truncated file). `fix` fits whose file it is."""
    if not path.is_file():
        raise DataError(f"{path}: file is missing", fix)
    try:
        frame = pd.read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"{path}: cannot parse CSV ({str(exc).strip()})", fix) from None
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: columns {missing} are missing", fix)
    gaps = frame[list(required)].isna().any(axis=1)
    if gaps.any():
        row = int(gaps.to_numpy().argmax())
        empty = [c for c in required if pd.isna(frame.iloc[row][c])]
        rows = f"{int(gaps.sum())} such row(s); a truncated file?"
        raise DataError(f"{path}: line {row + 2} has no {', '.join(empty)} ({rows})", fix)
    return frame


def _folder_frame(root: Path) -> pd.DataFrame:
    """One row per image under root/{Atypical,Normal}: id (file name), path, label."""
    rows = [
        {"id": p.name, "path": str(p.resolve()), "label": label}
        for label, paths in images_by_class(root).items()
        for p in paths
    ]
    frame = pd.DataFrame(rows)
    check_unique_ids(frame, str(root))
    return frame


def _amibr_metadata(root: Path) -> pd.DataFrame:
    votes = tuple(f"{e}_atypical" for e in AMIBR_EXPERTS)
    meta = read_csv(root / AMIBR_META, ("slide", "dataset", "uid", "majority_atypical", *votes))
    out = pd.DataFrame({"id": meta["dataset"] + "_" + meta["uid"].astype(str) + ".png"})
    out["group"] = meta["slide"]
    out["source"] = meta["dataset"]
    for i, expert in enumerate(AMIBR_EXPERTS, start=1):
        out[f"vote_{i}"] = meta[f"{expert}_atypical"].astype(int)
    out["majority"] = meta["majority_atypical"].astype(int)
    for i in (1, 2):
        out[f"subtype_{i}"] = meta[f"expert{i}_label"]
    return out


def load_amibr(data_root: Path, split: str) -> Dataset:
    """AMi-Br: `train` (rows of amibr_train_split.csv, in file order), `test` (the rest), `all`."""
    root = data_root / "AMi-Br"
    images = _folder_frame(root)
    meta = _amibr_metadata(data_root)
    frame = images.merge(meta, on="id", how="left", validate="one_to_one")
    unlisted = frame["group"].isna()
    if unlisted.any():
        example = frame.loc[unlisted, "path"].iloc[0]
        raise DataError(
            f"{example}: image is not listed in {data_root / AMIBR_META} ({int(unlisted.sum())} such images)",
            "remove images that do not belong to AMi-Br, or re-download the dataset",
        )
    if split == "all":
        return Dataset("amibr", split, frame.reset_index(drop=True))
    train = read_csv(data_root / AMIBR_TRAIN, ("dataset_uid", "slide", "final_label"))
    in_train = frame["id"].isin(train["dataset_uid"])
    if split == "test":
        return Dataset("amibr", split, frame[~in_train].reset_index(drop=True))
    if split != "train":
        raise DataError(f"amibr has no split {split!r}", "use amibr/train, amibr/test or amibr/all")
    by_id = frame.set_index("id")
    missing = train.loc[~train["dataset_uid"].isin(by_id.index), "dataset_uid"]
    if len(missing):
        raise DataError(
            f"{data_root / AMIBR_TRAIN}: lists {len(missing)} images not found under {root} "
            f"(first: {missing.iloc[0]})",
            "re-download AMi-Br so the images and the split file match",
        )
    ordered = by_id.loc[train["dataset_uid"]].reset_index()  # the reference's row order
    folder_label = ordered["label"].to_numpy()
    csv_label = (train["final_label"] == "Atypical").to_numpy().astype(int) * ATYPICAL
    if (folder_label != csv_label).any():
        bad = ordered["id"][folder_label != csv_label].iloc[0]
        raise DataError(
            f"{root}: image {bad} lies in the other class folder than {AMIBR_TRAIN} says",
            "re-download AMi-Br",
        )
    return Dataset("amibr", split, ordered)


def load_atnorm(data_root: Path, folder: str, votes_file: str | None) -> Dataset:
    """AtNorM-Br / AtNorM-MD: a held-out test set, with expert votes where released."""
    frame = _folder_frame(data_root / folder)
    frame["group"] = pd.NA
    frame["source"] = folder
    votes_path = data_root / votes_file if votes_file else None
    if votes_path is not None and votes_path.is_file():
        votes = read_csv(votes_path, ("Filename", "Majority"))
        experts = [c for c in votes.columns if c.startswith("Expert_")]
        table = pd.DataFrame({"id": votes["Filename"].astype(str)})
        for col in experts:
            table[f"vote_{col.split('_', 1)[1]}"] = (votes[col] == "Atypical").astype(int)
        table["majority"] = (votes["Majority"] == "Atypical").astype(int)
        frame = frame.merge(table, on="id", how="left", validate="one_to_one")
    name = folder.lower()
    return Dataset(name, "test", frame.reset_index(drop=True))
