"""What a classified slide leaves behind: a QuPath-importable GeoJSON, a CSV and a summary."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from mitobench.paths import atomic_path, atomic_write_text

QUPATH_CLASSES = {
    "Atypical": ("Atypical mitosis", [220, 40, 40]),
    "Normal": ("Normal mitosis", [40, 160, 60]),
}
"""Our class -> QuPath classification name and colour (RGB)."""
Z_95 = 1.959963984540054


def wilson_interval(k: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k/n (sound for small counts and 0 or n)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def summary(calls: pd.DataFrame, threshold: float, meta: dict[str, Any]) -> dict[str, Any]:
    """Counts, the atypical fraction and the atypical-to-normal ratio with 95 % intervals."""
    n = len(calls)
    k = int((calls["class"] == "Atypical").sum())
    lo, hi = wilson_interval(k, n)

    def odds(p: float) -> float | None:
        return None if math.isnan(p) or p >= 1 else p / (1 - p)  # None: no normal figure (infinite)

    fraction = k / n if n else math.nan
    return {
        **meta,
        "detections": n,
        "atypical": k,
        "normal": n - k,
        "padded": int(calls["padded"].sum()),
        "atypical_fraction": None if math.isnan(fraction) else fraction,
        "atypical_fraction_ci95": [None if math.isnan(v) else v for v in (lo, hi)],
        "atypical_to_normal_ratio": odds(fraction),
        "atypical_to_normal_ratio_ci95": [odds(lo), odds(hi)],
        "interval": "Wilson score, 95 %; the ratio's interval is the fraction's, transformed",
        "threshold": threshold,
    }


def coordinate(value: float) -> int | float:
    """A level-0 coordinate as written: whole pixels as integers (1194, not 1194.000000)."""
    v = float(value)
    return int(v) if v.is_integer() else round(v, 3)


def geojson(calls: pd.DataFrame) -> dict[str, Any]:
    """A FeatureCollection QuPath imports: one point annotation per detection."""
    features = []
    for row in calls.itertuples(index=False):
        name, colour = QUPATH_CLASSES[row[calls.columns.get_loc("class")]]
        features.append(
            {
                "type": "Feature",
                "id": str(row.id),
                "geometry": {"type": "Point", "coordinates": [coordinate(row.x), coordinate(row.y)]},
                "properties": {
                    "objectType": "annotation",
                    "name": str(row.id),
                    "classification": {"name": name, "color": colour},
                    # QuPath keeps numeric measurements only, so the edge flag is one too
                    "measurements": {"P(atypical)": float(row.p_atypical), "padded": float(row.padded)},
                    "padded": bool(row.padded),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_outputs(calls: pd.DataFrame, summary_: dict[str, Any], out: Path, stem: str) -> dict[str, Path]:
    """`<stem>.geojson`, `<stem>.csv`, `<stem>.summary.json` in `out`, each written atomically
    (the summary last: its presence means the slide is done)."""
    paths = {k: out / f"{stem}.{k}" for k in ("geojson", "csv")}
    atomic_write_text(paths["geojson"], json.dumps(geojson(calls)))
    table = calls[["id", "x", "y", "p_atypical", "class", "padded"]].copy()
    for axis in ("x", "y"):
        table[axis] = pd.Series([coordinate(v) for v in table[axis]], index=table.index, dtype=object)
    with atomic_path(paths["csv"]) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6f")
    paths["summary"] = out / f"{stem}.summary.json"
    atomic_write_text(paths["summary"], json.dumps(summary_, indent=1))
    return paths
