"""Detections are parsed by a schema: malformed input is one message naming the feature or row,
and nothing is dropped without a word."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mitobench.errors import DataError
from mitobench.slides.detections import read_detections


def _geojson(tmp_path: Path, features: object) -> Path:
    path = tmp_path / "d.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _feature(geometry: object, **props: object) -> dict:
    return {"type": "Feature", "geometry": geometry, "properties": props}


@pytest.mark.parametrize(
    ("features", "needle"),
    [
        ([_feature({"type": "Point", "coordinates": [10]})], "feature 1's Point has unusable coordinates"),
        ([_feature({"type": "Point", "coordinates": ["10", "20"]})], "feature 1's Point has unusable"),
        ([_feature({"type": "Point", "coordinates": [10, 20]}), 7], "feature 2 is not a GeoJSON feature"),
        (["a string"], "feature 1 is not a GeoJSON feature"),
        ([_feature({"type": "Polygon", "coordinates": []})], "feature 1's Polygon has unusable"),
        ([_feature({"type": "Polygon", "coordinates": [[]]})], "feature 1's Polygon has unusable"),
        ([_feature({"type": "MultiPoint", "coordinates": [[1, 2], [3, None]]})], "MultiPoint has unusable"),
        ("not a list", "`features` is not a list"),
    ],
)
def test_malformed_geojson_is_one_message(tmp_path: Path, features: object, needle: str) -> None:
    with pytest.raises(DataError) as err:
        read_detections(_geojson(tmp_path, features), 0.25)
    assert needle in str(err.value), err.value


def test_a_json_list_of_numbers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text("[1, 2, 3]")
    with pytest.raises(DataError, match="feature 1 is not a GeoJSON feature"):
        read_detections(path, 0.25)


@pytest.mark.parametrize(("x", "row"), [("abc", 3), ("inf", 3), ("12px", 3)])
def test_a_csv_coordinate_that_is_not_a_number_names_its_row(tmp_path: Path, x: str, row: int) -> None:
    path = tmp_path / "d.csv"
    path.write_text(f"x,y\n10,20\n{x},30\n")
    with pytest.raises(DataError, match=rf"row {row} has x="):
        read_detections(path, 0.25)


def test_a_midog_point_without_two_numbers_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"type": "Multiple points", "points": [{"point": ["a", 1, 0]}]}))
    with pytest.raises(DataError, match=r"point 1 is not \{'point': \[x_mm, y_mm, z\]"):
        read_detections(path, 0.25)


def test_unsupported_geometries_are_refused_or_counted_never_dropped_silently(tmp_path: Path) -> None:
    features = [
        _feature({"type": "Point", "coordinates": [10, 20]}),
        _feature({"type": "LineString", "coordinates": [[0, 0], [5, 5]]}),
        _feature({"type": "LineString", "coordinates": [[1, 1], [2, 2]]}),
        _feature(None),
        _feature({"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [4, 4], [0, 4], [0, 0]]]}),
    ]
    path = _geojson(tmp_path, features)
    with pytest.raises(DataError) as err:
        read_detections(path, 0.25)
    text = str(err.value)
    assert "3 feature(s) are not points or shapes (2 LineString, 1 no geometry)" in text
    assert "--skip-unsupported" in text
    read = read_detections(path, 0.25, skip_unsupported=True)
    assert read.table[["x", "y"]].values.tolist() == [[10.0, 20.0], [2.0, 2.0]]
    assert read.counts() == {
        "features_read": 5,
        "detections": 2,
        "skipped": {"LineString": 2, "no geometry": 1},
    }


def test_a_slides_csv_with_only_a_header_is_not_a_success(tmp_path: Path) -> None:
    from mitobench.slides.slide import jobs_from

    pairs = tmp_path / "slides.csv"
    pairs.write_text("slide,detections\n")
    with pytest.raises(DataError, match="holds no slides"):
        jobs_from(pairs, None)
