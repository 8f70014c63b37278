"""Classify every detection of a slide: patches are read by a thread pool while the network runs,
so the network, not the slide, sets the pace."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd

from mitobench import CLASS_NAMES
from mitobench.errors import DataError
from mitobench.inference.bundle import Engine
from mitobench.progress import NullProgress, Progress
from mitobench.slides.reader import SlideReader

CHUNK = 512
"""Detections read ahead and classified per step."""


def check_inside(reader: SlideReader, detections: pd.DataFrame) -> None:
    """Refuse detections whose centre is not on the slide (a wrong file, unit or resolution)."""
    outside = ~reader.inside(detections["x"].to_numpy(), detections["y"].to_numpy())
    if outside.any():
        first = detections[outside].iloc[0]
        raise DataError(
            f"{int(outside.sum())} of {len(detections)} detections lie outside {reader.path} "
            f"({reader.width}x{reader.height} px), e.g. {first['id']} at "
            f"({first['x']:.0f}, {first['y']:.0f})",
            "check that the detections belong to this slide and are in level-0 pixels (MIDOG JSON: "
            "millimetres, converted with the slide's resolution or --mpp)",
        )


def _read_chunks(
    reader: SlideReader, detections: pd.DataFrame, pool: ThreadPoolExecutor
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(patches, padded) chunk by chunk, the next chunk's reading under way while one is used."""
    xs, ys = detections["x"].to_numpy(), detections["y"].to_numpy()
    starts = list(range(0, len(detections), CHUNK))

    def submit(start: int) -> list[Future]:
        return [
            pool.submit(reader.patch, x, y)
            for x, y in zip(xs[start : start + CHUNK], ys[start : start + CHUNK], strict=True)
        ]

    pending = submit(starts[0]) if starts else []
    for i, _ in enumerate(starts):
        ahead = submit(starts[i + 1]) if i + 1 < len(starts) else []
        results = [f.result() for f in pending]
        yield np.stack([r[0] for r in results]), np.array([r[1] for r in results])
        pending = ahead


def classify_detections(
    reader: SlideReader,
    detections: pd.DataFrame,
    predictor: Engine,
    threshold: float | None = None,
    workers: int = 2,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """One row per detection: id, x, y, score, p_atypical, class, padded."""
    progress = progress or NullProgress()
    check_inside(reader, detections)
    threshold = predictor.threshold if threshold is None else threshold
    probs, padded = [], []
    progress.start(f"classifying {reader.path.name}", len(detections))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for patches, flags in _read_chunks(reader, detections, pool):
            probs.append(predictor.ensemble_probs(patches))
            padded.append(flags)
            progress.advance(len(patches))
    progress.finish()
    out = detections.copy()
    out["p_atypical"] = np.concatenate(probs) if probs else np.array([])
    out["class"] = [CLASS_NAMES[int(p >= threshold)] for p in out["p_atypical"]]
    out["padded"] = np.concatenate(padded) if padded else np.array([], dtype=bool)
    return out
