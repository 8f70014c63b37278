"""Per dataset/split summaries for `mitobench data info`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mitobench.data.dataset import Dataset
from mitobench.data.images import header_sizes
from mitobench.data.registry import DATASETS, load, present


def image_sizes(dataset: Dataset) -> list[str]:
    """Distinct `WxH` sizes, most common first, read from the file headers only."""
    counts = Counter(header_sizes(dataset.paths))
    return [f"{w}x{h}" for (w, h), _ in counts.most_common()]


def describe(data_root: Path) -> dict[str, dict[str, object]]:
    """Summaries of every split of every dataset present under `data_root`."""
    out: dict[str, dict[str, object]] = {}
    for name in present(data_root):
        spec = DATASETS[name]
        for split in spec.splits:
            ds = load(f"{name}/{split}", data_root)
            out[ds.key] = {
                "dataset": spec.title,
                "split": split,
                **ds.summary(),
                "image_size": image_sizes(ds),
            }
    return out
