"""Named datasets (`amibr/train`, `atnorm-md/test`, …) and custom ones, resolved against a data root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mitobench.data.custom import load_csv, load_folder
from mitobench.data.dataset import Dataset
from mitobench.data.geometry import PAPER_PATCH, PatchGeometry
from mitobench.data.upstream import AMIBR_META, AMIBR_TRAIN, load_amibr, load_atnorm
from mitobench.errors import DataError


@dataclass(frozen=True)
class DatasetSpec:
    """One upstream dataset: its folder under the data root, splits and loader."""

    name: str
    title: str
    folder: str
    splits: tuple[str, ...]
    files: tuple[str, ...]
    """Metadata files beside the folder that the dataset needs."""
    loader: Callable[[Path, str], Dataset]
    counts: dict[str, tuple[int, int]]
    """Expected (atypical, normal) per split, from the paper."""
    patch: PatchGeometry = PAPER_PATCH
    """The side and resolution of its patches."""
    voted: str | None = None
    """The split whose figures carry every expert's vote (the rater analysis reads it), if any."""


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "amibr",
            "AMi-Br",
            "AMi-Br",
            ("train", "test"),
            (AMIBR_META, AMIBR_TRAIN),
            load_amibr,
            {"train": (648, 2246), "test": (184, 642)},
            voted="all",
        ),
        DatasetSpec(
            "atnorm-br",
            "AtNorM-Br",
            "AtNorM-Br",
            ("test",),
            (),
            lambda root, split: load_atnorm(root, "AtNorM-Br", None),
            {"test": (128, 618)},
        ),
        DatasetSpec(
            "atnorm-md",
            "AtNorM-MD",
            "AtNorM-MD",
            ("test",),
            ("AtNorM-MD_expert_votes.csv",),
            lambda root, split: load_atnorm(root, "AtNorM-MD", "AtNorM-MD_expert_votes.csv"),
            {"test": (219, 1888)},
            voted="test",
        ),
    )
}

EVAL_SETS = ("amibr/test", "atnorm-br/test", "atnorm-md/test")
"""The paper's three test sets, in its order."""


def check_root(data_root: Path) -> None:
    """A data root must exist and hold at least one dataset."""
    if data_root.exists() and not data_root.is_dir():
        raise DataError(
            f"data root {data_root} is a file, not a folder",
            "pass the folder that holds AMi-Br/, AtNorM-Br/, AtNorM-MD/ (--data-root DIR)",
        )
    if not data_root.is_dir():
        raise DataError(
            f"data root {data_root} does not exist",
            "pass --data-root DIR or set MITOBENCH_DATA, or fetch the data: mitobench data download",
        )
    if not present(data_root):
        raise DataError(
            f"data root {data_root} holds none of {', '.join(s.folder for s in DATASETS.values())}",
            "point --data-root at the folder that contains AMi-Br/, AtNorM-Br/, AtNorM-MD/",
        )


def present(data_root: Path) -> list[str]:
    """Names of the upstream datasets whose folder exists under `data_root`."""
    return [name for name, spec in DATASETS.items() if (data_root / spec.folder).is_dir()]


def missing(data_root: Path) -> list[str]:
    """Names of the upstream datasets absent from `data_root`."""
    have = set(present(data_root))
    return [name for name in DATASETS if name not in have]


def parse_key(key: str) -> tuple[str, str]:
    """`amibr/test` -> ("amibr", "test"); a bare held-out name gets its one split."""
    name, _, split = key.lower().partition("/")
    spec = DATASETS.get(name)
    if spec is None:
        raise DataError(
            f"unknown dataset {key!r}",
            f"use one of {', '.join(all_keys())}, or a folder / CSV path",
        )
    split = split or (spec.splits[0] if len(spec.splits) == 1 else "")
    if split not in (*spec.splits, "all") or (split == "all" and name != "amibr"):
        raise DataError(
            f"dataset {spec.title} has no split {split or '(none given)'!r}",
            f"use one of {', '.join(f'{name}/{s}' for s in spec.splits)}",
        )
    return name, split


def all_keys() -> list[str]:
    return [f"{name}/{split}" for name, spec in DATASETS.items() for split in spec.splits]


def load(key: str, data_root: Path) -> Dataset:
    """Load a named dataset split, or a custom folder / CSV when `key` is a path.

    A custom set is named after its folder or file plus a hash of its resolved path, or
    `NAME=PATH` names it.
    """
    name, sep, rest = key.partition("=")
    given = name if sep and Path(rest).expanduser().exists() else None
    if key.lower().partition("/")[0] not in DATASETS:
        path = Path(rest if given else key).expanduser()
        if path.is_file() and path.suffix.lower() == ".csv":
            return load_csv(path, name=given)
        if path.is_dir():
            return load_folder(path, name=given)
        wanted = Path(rest if sep else key).expanduser()
        if sep or wanted.suffix.lower() == ".csv" or len(wanted.parts) > 2:  # meant as a path
            raise DataError(
                f"{wanted}: no such folder or CSV file"
                + (f" (for the dataset named {name!r})" if sep else ""),
                "check the path: a folder of Atypical/ and Normal/ images, or a CSV with path and label",
            )
    name, split = parse_key(key)
    spec = DATASETS[name]
    if not (data_root / spec.folder).is_dir():
        check_root(data_root)
        raise DataError(
            f"dataset {spec.title} is not in data root {data_root} (no {spec.folder}/ folder)",
            f"fetch it with `mitobench data download --data-root {data_root}`, "
            "or point --data-root elsewhere",
        )
    return spec.loader(data_root, split)


def load_present(keys: list[str], data_root: Path) -> tuple[list[Dataset], list[str]]:
    """The datasets `keys` names that are present (named splits under the data root, custom
    folders / CSVs), and the named keys whose dataset is absent from the data root."""
    have = set(present(data_root)) if data_root.is_dir() else set()
    found, missing = [], []
    for key in keys:
        name = key.split("/")[0].lower()
        if name in DATASETS and name not in have:
            missing.append(key)
        else:
            found.append(load(key, data_root))
    return found, missing


def patch_geometry(train_data: str, image_size: tuple[int, int] | None) -> PatchGeometry:
    """The geometry a run on `train_data` learns: a named dataset's declared one; for a user's
    data, the side of its images at the paper's resolution (the resolution a folder of PNGs
    cannot tell)."""
    name = train_data.split("/")[0]
    if name in DATASETS:
        return DATASETS[name].patch
    side = image_size[0] if image_size and image_size[0] == image_size[1] else PAPER_PATCH.size
    return PatchGeometry(side, PAPER_PATCH.mpp)


def voted_sets(data_root: Path) -> list[str]:
    """The dataset keys whose experts' votes are in this data root, in registry order."""
    here = set(present(data_root))
    return [f"{s.name}/{s.voted}" for s in DATASETS.values() if s.voted and s.name in here]
