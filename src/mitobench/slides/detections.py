"""A detector's output, read into one table: id, x, y (level-0 pixels) and score.

CSV (`x,y` in level-0 pixels, optional `id`, `score`), QuPath GeoJSON (points, or the centroid of
polygons / rectangles) and the MIDOG Track 1 output JSON (`Multiple points`, millimetres,
converted with the slide's microns per pixel).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mitobench.data.upstream import read_csv
from mitobench.errors import DataError

COLUMNS = ["id", "x", "y", "score"]
FIX = "see the README's 'Use it on your slides' for the accepted detection formats"


def read_detections(path: Path, mpp: float) -> pd.DataFrame:
    """The detections in `path` (format by content), coordinates in level-0 pixels."""
    if path.suffix.lower() == ".csv":
        return _from_csv(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: detections file does not exist", "check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not CSV or JSON ({exc})", FIX) from None
    if isinstance(doc, dict) and doc.get("type") == "Multiple points":
        return _from_midog(doc, path, mpp)
    return _from_geojson(doc, path)


def _table(rows: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    if not rows:
        raise DataError(f"{path}: holds no detections (no points or shapes)", FIX)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame["id"] = frame["id"].astype(str)
    if frame["id"].duplicated().any():
        raise DataError(
            f"{path}: detection id {frame['id'][frame['id'].duplicated()].iloc[0]!r} repeats", FIX
        )
    return frame


def _from_csv(path: Path) -> pd.DataFrame:
    raw = read_csv(path, ("x", "y"), fix=FIX)
    ids = raw["id"] if "id" in raw.columns else [f"d{i + 1}" for i in range(len(raw))]
    score = raw["score"] if "score" in raw.columns else np.nan
    rows = pd.DataFrame({"id": ids, "x": raw["x"].astype(float), "y": raw["y"].astype(float), "score": score})
    return _table(rows.to_dict("records"), path)


def _from_midog(doc: dict[str, Any], path: Path, mpp: float) -> pd.DataFrame:
    """MIDOG Track 1: `point` is [x_mm, y_mm, 0]."""
    rows = []
    for i, p in enumerate(doc.get("points", [])):
        try:
            x_mm, y_mm = float(p["point"][0]), float(p["point"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            raise DataError(f"{path}: point {i + 1} has no [x_mm, y_mm, z] `point`", FIX) from None
        px = 1000.0 / mpp
        rows.append(
            {"id": p.get("name", f"d{i + 1}"), "x": x_mm * px, "y": y_mm * px, "score": p.get("probability")}
        )
    return _table(rows, path)


def _from_geojson(doc: Any, path: Path) -> pd.DataFrame:
    """QuPath GeoJSON: a FeatureCollection, a list of features, or one feature."""
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features", [])
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        features = [doc]
    elif isinstance(doc, list):
        features = doc
    else:
        raise DataError(f"{path}: neither GeoJSON nor a MIDOG `Multiple points` file", FIX)
    rows = []
    for i, feature in enumerate(features):
        props = (feature or {}).get("properties") or {}
        fid = str(feature.get("id") or props.get("name") or f"d{i + 1}")
        points = _points(feature.get("geometry") or {})
        for j, (x, y) in enumerate(points):
            name = fid if len(points) == 1 else f"{fid}-{j + 1}"
            rows.append({"id": name, "x": x, "y": y, "score": _score(props)})
    return _table(rows, path)


def _score(props: dict[str, Any]) -> float | None:
    """A `score` measurement, as QuPath writes measurements (a mapping or a list of name/value)."""
    m = props.get("measurements")
    if isinstance(m, dict):
        return m.get("score")
    if isinstance(m, list):
        return next((e.get("value") for e in m if str(e.get("name", "")).lower() == "score"), None)
    return None


def _points(geometry: dict[str, Any]) -> list[tuple[float, float]]:
    kind, coords = geometry.get("type"), geometry.get("coordinates")
    if kind == "Point":
        return [(float(coords[0]), float(coords[1]))]
    if kind == "MultiPoint":
        return [(float(c[0]), float(c[1])) for c in coords]
    if kind == "Polygon":
        return [_centroid(coords[0])]
    if kind == "MultiPolygon":
        return [_centroid(poly[0]) for poly in coords]
    return []


def _centroid(ring: list[list[float]]) -> tuple[float, float]:
    """Area centroid of a polygon's outer ring (the shoelace formula); the mean of its vertices
    when the ring has no area."""
    pts = np.asarray(ring, dtype=np.float64)[:, :2]
    x, y = pts[:, 0], pts[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    area = cross.sum() / 2
    if abs(area) < 1e-9:
        return float(x.mean()), float(y.mean())
    cx = ((x + np.roll(x, -1)) * cross).sum() / (6 * area)
    cy = ((y + np.roll(y, -1)) * cross).sum() / (6 * area)
    return float(cx), float(cy)
