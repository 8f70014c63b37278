"""Bring-your-own data: a folder of `<class>/<image>` files or a CSV of path, label[, group]."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pandas as pd

from mitobench.data.dataset import Dataset
from mitobench.data.folders import IMAGE_SUFFIXES, class_folders, list_images, parse_label
from mitobench.data.upstream import read_csv
from mitobench.errors import DataError

CSV_FIX = "fix your CSV: columns path, label (Atypical/Normal or 1/0), optionally group, id, fold"
UNLABELLED_CSV_FIX = "fix your CSV: a column path (one image per row), optionally id"


def text_id(path: Path) -> str:
    """A file name as an id that any CSV or JSON can hold: bytes that are not UTF-8 (a name made
    on another system) are written as backslash escapes instead of failing after all the work."""
    return os.fsencode(path).decode("utf-8", errors="backslashreplace")


def unique_name(path: Path) -> str:
    """`<folder or file stem>-<8 hex of the resolved path>`: `siteA/test` and `siteB/test` differ."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.stem if path.is_file() else path.name}-{digest}"


def require_unique_images(dataset: Dataset, source: Path) -> None:
    """Refuse a labelled dataset listing one image twice (two spellings of a path, or two copies
    of one file): it would count twice, and could sit on both sides of a fold."""
    frame = dataset.frame
    hashes = pd.Series(dataset.content_hashes, index=frame.index)
    repeated = hashes[hashes.duplicated(keep=False)]
    if not repeated.empty:
        first = repeated[repeated == repeated.iloc[0]].index
        a, b = (frame.loc[i, "id"] for i in first[:2])
        raise DataError(
            f"{source}: {a} and {b} are the same image (identical content); "
            f"{len(repeated) - repeated.nunique()} repeat(s) in all",
            "list each image once",
        )


def load_folder(root: Path, name: str | None = None) -> Dataset:
    """A folder with class sub-folders (Atypical/Normal, or 1/0); ids are paths relative to it."""
    rows = []
    for label, folder in class_folders(root).items():
        images = list_images(folder)
        if not images:
            raise DataError(f"{folder}: class folder holds no images", "add images or remove it")
        rows += [
            {"id": text_id(p.relative_to(root)), "path": str(p.resolve()), "label": label} for p in images
        ]
    frame = pd.DataFrame(rows)
    frame["group"] = pd.NA
    dataset = Dataset(name or unique_name(root), "all", frame, source=str(root.resolve()))
    require_unique_images(dataset, root)  # after the Dataset's own checks (ids, labels)
    return dataset


def load_unlabelled_folder(root: Path) -> Dataset:
    """Every image under `root` (recursively), for prediction; labels are -1 (unknown)."""
    if not root.is_dir():
        raise DataError(f"{root}: folder does not exist", "pass a folder of image patches")
    paths = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(root).parts)  # hidden, AppleDouble
    )
    if not paths:
        raise DataError(f"{root}: no images found", "pass a folder holding .png/.jpg/.tif patches")
    frame = pd.DataFrame(
        {"id": [text_id(p.relative_to(root)) for p in paths], "path": [str(p.resolve()) for p in paths]}
    )
    frame["label"] = -1
    frame["group"] = pd.NA
    return Dataset(root.name, "all", frame)


def load_csv(path: Path, name: str | None = None, require_labels: bool = True) -> Dataset:
    """A CSV with columns `path`, `label` and optionally `group` and `id`.

    Relative paths are taken relative to the CSV's folder. Without labels (prediction)
    the `label` column may be absent.
    """
    required, fix = (("path", "label"), CSV_FIX) if require_labels else (("path",), UNLABELLED_CSV_FIX)
    frame = read_csv(path, required, fix=fix)
    base = path.parent
    resolved = []
    for raw in frame["path"].astype(str):
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            raise DataError(
                f"{path}: names an image that does not exist: {raw} (looked at {p})",
                "fix the path in the CSV (relative paths are relative to the CSV's folder)",
            )
        resolved.append(str(p.resolve()))
    out = pd.DataFrame({"path": resolved})
    out["id"] = frame["id"].astype(str) if "id" in frame.columns else frame["path"].astype(str)
    if "label" in frame.columns:
        out["label"] = [parse_label(v, f"{path} row {i + 2}") for i, v in enumerate(frame["label"])]
    else:
        out["label"] = -1
    out["group"] = frame["group"] if "group" in frame.columns else pd.NA
    extra = [c for c in frame.columns if c not in {"path", "id", "label", "group"}]
    out = pd.concat([out, frame[extra]], axis=1)
    if require_labels and out["label"].nunique() < 2:
        raise DataError(
            f"{path}: every row has the same label",
            "a labelled dataset needs both atypical and normal examples",
        )
    dataset = Dataset(name or unique_name(path), "all", out, source=str(path.resolve()))
    if require_labels:
        require_unique_images(dataset, path)  # after the Dataset's own checks (ids, labels)
    return dataset
