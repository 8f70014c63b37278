"""A labelled set of mitotic-figure patches with per-sample metadata."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from mitobench.errors import DataError

REQUIRED_COLUMNS = ("id", "path", "label", "group")
"""Every dataset frame has these; `label` is 1 for atypical, 0 for normal; `group` may be NA."""


FACT_PREFIXES = ("vote_", "subtype_")
"""Per-figure facts that travel with a model's predictions into the results store (the experts'
votes and subtypes), so the rater analysis needs no data root."""


def vote_columns(frame: pd.DataFrame) -> list[str]:
    """The experts' vote columns (`vote_<expert>`, 1 = atypical), in a fixed order."""
    return sorted(c for c in frame.columns if c.startswith("vote_"))


@dataclass(frozen=True)
class Dataset:
    """Samples of one dataset split, in a fixed order.

    `frame` holds one row per sample: `id`, absolute `path`, `label` (1 = atypical),
    `group` (slide, or NA where unknown) and whatever metadata the source provides
    (`source`, `vote_<expert>` as 1/0, `majority`, `subtype_<expert>`).
    """

    name: str
    split: str
    frame: pd.DataFrame
    image_size: tuple[int, int] | None = None
    source: str = ""
    """The resolved folder or CSV a user's dataset came from ("" for the named datasets)."""

    def __post_init__(self) -> None:
        missing = [c for c in REQUIRED_COLUMNS if c not in self.frame.columns]
        if missing:
            raise ValueError(f"dataset frame lacks columns {missing}")
        check_unique_ids(self.frame, self.key)

    @property
    def key(self) -> str:
        """`name/split`, the name used on the command line and in results."""
        return f"{self.name}/{self.split}"

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def ids(self) -> list[str]:
        return self.frame["id"].tolist()

    @property
    def paths(self) -> list[Path]:
        return [Path(p) for p in self.frame["path"]]

    @cached_property
    def content_hashes(self) -> list[str]:
        """sha256 of each image file's bytes, in order, read once per dataset: the same image under
        two paths (or two copies) is one hash (duplicate and train/eval overlap checks)."""
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in self.paths]

    @property
    def labels(self) -> np.ndarray:
        return self.frame["label"].to_numpy(dtype=np.int64)

    @property
    def groups(self) -> np.ndarray:
        return self.frame["group"].to_numpy()

    def figure_facts(self) -> pd.DataFrame:
        """The per-figure facts (`FACT_PREFIXES` columns) in sample order; no columns if none."""
        return self.frame[[c for c in self.frame.columns if c.startswith(FACT_PREFIXES)]]

    def subset(self, index: np.ndarray | list[int], split: str | None = None) -> Dataset:
        """The samples at `index`, in that order (e.g. one fold's training rows)."""
        frame = self.frame.iloc[np.asarray(index)].reset_index(drop=True)
        return Dataset(self.name, split or self.split, frame, self.image_size, self.source)

    def fingerprint(self) -> str:
        """sha256 of the ids and labels in order: tells two datasets under one name apart."""
        text = "\n".join(f"{i}\t{y}" for i, y in zip(self.frame["id"], self.frame["label"], strict=True))
        return hashlib.sha256(text.encode()).hexdigest()

    def summary(self) -> dict[str, object]:
        """Counts per class and slides: what `mitobench data info` shows."""
        labels = self.labels
        groups = self.frame["group"].dropna()
        return {
            "n": len(labels),
            "n_atypical": int((labels == 1).sum()),
            "n_normal": int((labels == 0).sum()),
            "n_slides": int(groups.nunique()) if len(groups) else None,
        }


def check_unique_ids(frame: pd.DataFrame, where: str) -> None:
    """Refuse duplicate sample ids: results are keyed by id."""
    dup = frame["id"][frame["id"].duplicated()]
    if len(dup):
        first = dup.iloc[0]
        paths = frame.loc[frame["id"] == first, "path"].tolist()
        raise DataError(
            f"{where}: sample id {first!r} occurs {len(paths)} times ({', '.join(map(str, paths))})",
            "give every image a unique file name (or a unique id column in the CSV)",
        )
