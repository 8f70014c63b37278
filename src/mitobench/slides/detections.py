"""A detector's output, read into one table: id, x, y (level-0 pixels) and score.

CSV (`x,y` in level-0 pixels, optional `id`, `score`), QuPath GeoJSON (points, or the centroid of
polygons / rectangles) and the MIDOG Track 1 output JSON (`Multiple points`, millimetres,
converted with the slide's microns per pixel).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, FiniteFloat, ValidationError

from mitobench.config_file import first_error
from mitobench.data.upstream import read_csv
from mitobench.errors import DataError

COLUMNS = ["id", "x", "y", "score"]
FIX = "see the README's 'Use it on your slides' for the accepted detection formats"
SUPPORTED = ("Point", "MultiPoint", "Polygon", "MultiPolygon")

Coord = Annotated[list[FiniteFloat], Field(min_length=2, max_length=3)]
"""[x, y] or [x, y, z]: numbers, not strings, finite."""
Ring = Annotated[list[Coord], Field(min_length=1)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class _Point(_Strict):
    type: Literal["Point"]
    coordinates: Coord


class _MultiPoint(_Strict):
    type: Literal["MultiPoint"]
    coordinates: Annotated[list[Coord], Field(min_length=1)]


class _Polygon(_Strict):
    type: Literal["Polygon"]
    coordinates: Annotated[list[Ring], Field(min_length=1)]


class _MultiPolygon(_Strict):
    type: Literal["MultiPolygon"]
    coordinates: Annotated[list[Annotated[list[Ring], Field(min_length=1)]], Field(min_length=1)]


_GEOMETRY: dict[str, type[_Strict]] = {
    "Point": _Point,
    "MultiPoint": _MultiPoint,
    "Polygon": _Polygon,
    "MultiPolygon": _MultiPolygon,
}


class _Feature(_Strict):
    id: str | int | None = None
    geometry: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None


class _MidogPoint(_Strict):
    point: Coord
    name: str | None = None
    probability: FiniteFloat | None = None


@dataclass
class Detections:
    """The detections read, and what was in the file but is not a detection (e.g. LineStrings)."""

    table: pd.DataFrame
    features: int
    unsupported: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, Any]:
        """For the slide's summary: what was read and what was skipped."""
        return {"features_read": self.features, "detections": len(self.table), "skipped": self.unsupported}


def _parse(model: type[_Strict], raw: object, where: str) -> Any:
    """`raw` validated as `model`, or one message: `where` (the file and the item) and why."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise DataError(f"{where} ({first_error(exc)})", FIX) from None


def read_detections(path: Path, mpp: float, skip_unsupported: bool = False) -> Detections:
    """The detections in `path` (format by content), coordinates in level-0 pixels.

    Geometries that are not points or shapes (LineString, …) are an error naming their kinds and
    counts, unless `skip_unsupported`, when they are counted in `Detections.unsupported`.
    """
    if path.suffix.lower() == ".csv":
        table = _from_csv(path)
        return Detections(table, len(table))
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: detections file does not exist", "check the path") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not CSV or JSON ({exc})", FIX) from None
    if isinstance(doc, dict) and doc.get("type") == "Multiple points":
        table = _from_midog(doc, path, mpp)
        return Detections(table, len(table))
    return _from_geojson(doc, path, skip_unsupported)


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


def _numbers(raw: pd.DataFrame, column: str, path: Path) -> pd.Series:
    values = pd.to_numeric(raw[column], errors="coerce")
    bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: row {row + 2} has {column}={raw[column].iloc[row]!r}, not a finite number",
            "give x and y as level-0 pixel coordinates (numbers)",
        )
    return values.astype(float)


def _from_csv(path: Path) -> pd.DataFrame:
    raw = read_csv(path, ("x", "y"), fix=FIX)
    ids = raw["id"] if "id" in raw.columns else [f"d{i + 1}" for i in range(len(raw))]
    score = raw["score"] if "score" in raw.columns else np.nan
    rows = pd.DataFrame(
        {"id": ids, "x": _numbers(raw, "x", path), "y": _numbers(raw, "y", path), "score": score}
    )
    return _table(rows.to_dict("records"), path)


def _from_midog(doc: dict[str, Any], path: Path, mpp: float) -> pd.DataFrame:
    """MIDOG Track 1: `point` is [x_mm, y_mm, 0]."""
    points = doc.get("points", [])
    if not isinstance(points, list):
        raise DataError(f"{path}: `points` is not a list", FIX)
    rows = []
    for i, raw in enumerate(points):
        p = _parse(_MidogPoint, raw, f"{path}: point {i + 1} is not {{'point': [x_mm, y_mm, z], ...}}")
        px = 1000.0 / mpp
        rows.append(
            {"id": p.name or f"d{i + 1}", "x": p.point[0] * px, "y": p.point[1] * px, "score": p.probability}
        )
    return _table(rows, path)


def _from_geojson(doc: Any, path: Path, skip_unsupported: bool) -> Detections:
    """QuPath GeoJSON: a FeatureCollection, a list of features, or one feature."""
    if isinstance(doc, dict) and doc.get("type") == "FeatureCollection":
        features = doc.get("features", [])
    elif isinstance(doc, dict) and doc.get("type") == "Feature":
        features = [doc]
    elif isinstance(doc, list):
        features = doc
    else:
        raise DataError(f"{path}: neither GeoJSON nor a MIDOG `Multiple points` file", FIX)
    if not isinstance(features, list):
        raise DataError(f"{path}: `features` is not a list", FIX)
    rows: list[dict[str, Any]] = []
    unsupported: Counter[str] = Counter()
    for i, raw in enumerate(features):
        feature = _parse(_Feature, raw, f"{path}: feature {i + 1} is not a GeoJSON feature")
        props = feature.properties or {}
        fid = str(feature.id if feature.id is not None else props.get("name") or f"d{i + 1}")
        kind = str((feature.geometry or {}).get("type", "no geometry"))
        if kind not in _GEOMETRY:
            unsupported[kind] += 1
            continue
        points = _points(feature.geometry or {}, path, i)
        for j, (x, y) in enumerate(points):
            name = fid if len(points) == 1 else f"{fid}-{j + 1}"
            rows.append({"id": name, "x": x, "y": y, "score": _score(props)})
    if unsupported and not skip_unsupported:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(unsupported.items()))
        raise DataError(
            f"{path}: {sum(unsupported.values())} feature(s) are not points or shapes ({kinds})",
            f"keep only {', '.join(SUPPORTED)} features, or pass --skip-unsupported to leave them out",
        )
    return Detections(_table(rows, path), len(features), dict(unsupported))


def _score(props: dict[str, Any]) -> float | None:
    """A `score` measurement, as QuPath writes measurements (a mapping or a list of name/value)."""
    m = props.get("measurements")
    value = None
    if isinstance(m, dict):
        value = m.get("score")
    elif isinstance(m, list):
        value = next(
            (e.get("value") for e in m if isinstance(e, dict) and str(e.get("name", "")).lower() == "score"),
            None,
        )
    return float(value) if isinstance(value, int | float) and np.isfinite(value) else None


def _points(geometry: dict[str, Any], path: Path, i: int) -> list[tuple[float, float]]:
    kind = geometry["type"]
    shape = _parse(_GEOMETRY[kind], geometry, f"{path}: feature {i + 1}'s {kind} has unusable coordinates")
    coords = shape.coordinates
    if isinstance(shape, _Point):
        return [(coords[0], coords[1])]
    if isinstance(shape, _MultiPoint):
        return [(c[0], c[1]) for c in coords]
    if isinstance(shape, _Polygon):
        return [_centroid(coords[0])]
    return [_centroid(poly[0]) for poly in coords]


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
