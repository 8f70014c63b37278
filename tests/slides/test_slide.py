"""`mitobench slide` on a real-pixel tiled TIFF: the same probabilities as `predict` on the PNGs,
whatever the detection format; edges padded and flagged; bad input gets one clear message."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mitobench.slides.reader import SlideReader
from tests.slides.conftest import write_slide

pytest.importorskip("openslide")


@pytest.fixture(scope="module")
def slide(real_patches, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[int, int]]]:
    path = tmp_path_factory.mktemp("slide") / "slide.tif"
    return path, write_slide(path, real_patches[1])


def _csv(path: Path, centres: list[tuple[int, int]]) -> Path:
    pd.DataFrame({"id": [f"{i:02d}" for i in range(len(centres))], "x": [c[0] for c in centres],
                  "y": [c[1] for c in centres]}).to_csv(path, index=False)  # fmt: skip
    return path


def _slide_probs(out: Path, stem: str = "slide") -> pd.DataFrame:
    return pd.read_csv(out / f"{stem}.csv", dtype={"id": str}).sort_values("id").reset_index(drop=True)


def test_slide_probabilities_equal_predict_on_the_pngs(slide, png_probs, trained_run, tmp_path, cli) -> None:
    path, centres = slide
    out = tmp_path / "out"
    dets = _csv(tmp_path / "d.csv", centres)
    code, _, err = cli("slide", path, "--detections", dets, "--model", trained_run, "--out", out)
    assert code == 0, err
    calls = _slide_probs(out)
    np.testing.assert_allclose(calls["p_atypical"].to_numpy(), png_probs["probability"].to_numpy(), atol=1e-4)
    assert not calls["padded"].any()
    summary = json.loads((out / "slide.summary.json").read_text())
    assert summary["detections"] == 16 and summary["atypical"] + summary["normal"] == 16
    assert summary["detections_read"] == {
        "features_read": 16,
        "detections": 16,
        "skipped": {},
        "classified": 16,
    }
    threshold = summary["threshold"]
    assert list(calls["class"]) == ["Atypical" if p >= threshold else "Normal" for p in calls["p_atypical"]]
    k = int((calls["class"] == "Atypical").sum())
    assert summary["atypical"] == k and summary["atypical_fraction"] == pytest.approx(k / 16)
    # the 95 % Wilson interval, written out from its definition
    z, f = 1.959963984540054, k / 16
    centre, half = (
        (f + z * z / 32) / (1 + z * z / 16),
        z * np.sqrt(f * (1 - f) / 16 + z * z / 1024) / (1 + z * z / 16),
    )
    assert summary["atypical_fraction_ci95"] == pytest.approx([max(0, centre - half), min(1, centre + half)])
    assert summary["mpp"] == pytest.approx(0.25) and summary["mpp_source"]
    assert summary["model"]["sha256"] != summary["data"]["slide"] and len(summary["data"]["slide"]) == 64
    geo = json.loads((out / "slide.geojson").read_text())
    assert geo["type"] == "FeatureCollection"
    by_id = calls.set_index("id")
    assert sorted(f["id"] for f in geo["features"]) == sorted(by_id.index)  # every detection, once
    for f in geo["features"]:
        row = by_id.loc[f["id"]]
        assert f["geometry"] == {"type": "Point", "coordinates": [row["x"], row["y"]]}
        assert f["properties"]["classification"]["name"] == f"{row['class']} mitosis"
        assert f["properties"]["measurements"]["P(atypical)"] == pytest.approx(
            row["p_atypical"], abs=1e-6
        )  # CSV: 6 places


def test_midog_json_and_qupath_geojson_give_the_csvs_result(
    slide, png_probs, trained_run, tmp_path, cli
) -> None:
    path, centres = slide
    mpp = 0.25
    midog = {"type": "Multiple points", "version": {"major": 1, "minor": 0},
             "points": [{"name": f"{i:02d}", "point": [x * mpp / 1000, y * mpp / 1000, 0], "probability": 0.9}
                        for i, (x, y) in enumerate(centres)]}  # fmt: skip
    (tmp_path / "midog.json").write_text(json.dumps(midog))
    features = []
    for i, (x, y) in enumerate(centres):
        if i % 2:  # a point
            geometry = {"type": "Point", "coordinates": [x, y]}
        else:  # a rectangle around the figure: its centroid is the centre
            ring = [[x - 20, y - 30], [x + 20, y - 30], [x + 20, y + 30], [x - 20, y + 30], [x - 20, y - 30]]
            geometry = {"type": "Polygon", "coordinates": [ring]}
        features.append({"type": "Feature", "id": f"{i:02d}", "geometry": geometry,
                         "properties": {"objectType": "annotation"}})  # fmt: skip
    (tmp_path / "qupath.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    for name in ("midog.json", "qupath.geojson"):
        out = tmp_path / f"out-{name}"
        code, _, err = cli(
            "slide", path, "--detections", tmp_path / name, "--model", trained_run, "--out", out
        )
        assert code == 0, err
        calls = _slide_probs(out)
        np.testing.assert_allclose(
            calls["p_atypical"].to_numpy(), png_probs["probability"].to_numpy(), atol=1e-4
        )
        np.testing.assert_allclose(calls[["x", "y"]].to_numpy(), np.array(centres, dtype=float), atol=1e-6)


def test_a_detection_at_the_edge_is_padded_and_flagged(slide, trained_run, tmp_path, cli) -> None:
    path, centres = slide
    pd.DataFrame({"x": [5, centres[0][0]], "y": [centres[0][1], 3]}).to_csv(
        tmp_path / "edge.csv", index=False
    )
    code, _, err = cli("slide", path, "--detections", tmp_path / "edge.csv", "--model", trained_run,
                       "--out", tmp_path / "o")  # fmt: skip
    assert code == 0, err
    calls = pd.read_csv(tmp_path / "o" / "slide.csv")
    assert len(calls) == 2 and calls["padded"].all()
    rows = (tmp_path / "o" / "slide.csv").read_text().splitlines()
    assert rows[1].split(",")[1:3] == ["5", str(centres[0][1])]  # whole pixels, not 5.000000
    features = json.loads((tmp_path / "o" / "slide.geojson").read_text())["features"]
    assert [f["properties"]["measurements"]["padded"] for f in features] == [1.0, 1.0]  # QuPath keeps these
    assert features[0]["geometry"]["coordinates"] == [5, centres[0][1]]
    patch, padded = SlideReader(path).patch(5, centres[0][1])
    assert padded and patch.shape == (128, 128, 3) and (patch > 0).all()  # reflected, never black


def test_a_slide_at_another_resolution_is_resampled(real_patches, tmp_path) -> None:
    path = tmp_path / "fine.tif"
    centres = write_slide(path, real_patches[1][:2], mpp=0.125, scale=2)
    reader = SlideReader(path)
    assert reader.resampled and reader.side0 == 256
    patch, _ = reader.patch(*centres[0])
    diff = np.abs(patch.astype(int) - real_patches[1][0].astype(int))
    assert patch.shape == (128, 128, 3) and diff.mean() < 3  # the 2x nearest upscale resampled back
    assert not SlideReader(path, patch_mpp=0.125).resampled


def test_many_slides_from_a_csv_resume(slide, trained_run, tmp_path, cli) -> None:
    path, centres = slide
    dets = _csv(tmp_path / "d.csv", centres[:4])
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"slide": [str(path)], "detections": [dets.name]}).to_csv(pairs, index=False)
    code, out1, err = cli("slide", pairs, "--model", trained_run, "--out", tmp_path / "o")
    assert code == 0 and "4 detections" in out1, err
    code, out2, err = cli("slide", pairs, "--model", trained_run, "--out", tmp_path / "o")
    assert code == 0 and "already done with this model: slide" in out2, err


@pytest.mark.parametrize("fault", ["unreadable", "outside", "no-points", "no-mpp"])
def test_bad_slide_input_is_one_clear_message(
    fault: str, slide, real_patches, trained_run, tmp_path, cli
) -> None:
    import tifffile

    path, centres = slide
    dets = _csv(tmp_path / "d.csv", centres)
    if fault == "unreadable":
        path = tmp_path / "broken.svs"
        path.write_bytes(b"not a slide" * 100)
        needle = "not a slide OpenSlide can read"
    elif fault == "outside":
        pd.DataFrame({"x": [50_000], "y": [10]}).to_csv(dets, index=False)
        needle = "1 of 1 detections lie outside"
    elif fault == "no-points":
        dets = tmp_path / "empty.geojson"
        dets.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
        needle = "holds no detections"
    else:
        path = tmp_path / "nompp.tif"
        tifffile.imwrite(path, np.full((512, 512, 3), 200, np.uint8), tile=(256, 256), photometric="rgb")
        needle = "no resolution metadata"
    code, _, err = cli("slide", path, "--detections", dets, "--model", trained_run, "--out", tmp_path / "o")
    assert code == 2 and needle in err and "Traceback" not in err, err
    if fault == "no-mpp":
        pd.DataFrame({"x": [100], "y": [100]}).to_csv(dets, index=False)
        code, _, err = cli(
            "slide",
            path,
            "--detections",
            dets,
            "--model",
            trained_run,
            "--out",
            tmp_path / "o",
            "--mpp",
            "0.25",
        )
        assert code == 0, err


def test_another_slides_outputs_are_never_replaced_silently(
    slide, real_patches, trained_run, tmp_path, cli
) -> None:
    """A/case.tif then B/case.tif into one --out: the second is refused, naming both slides, and
    the first one's files are untouched; --overwrite replaces them. Other detections likewise."""
    import shutil

    path, centres = slide
    (tmp_path / "A").mkdir(), (tmp_path / "B").mkdir()
    a = Path(shutil.copy(path, tmp_path / "A" / "case.tif"))
    b = tmp_path / "B" / "case.tif"
    assert write_slide(b, real_patches[1][::-1]) == centres  # same places, other figures
    dets, out = _csv(tmp_path / "d.csv", centres[:4]), tmp_path / "o"
    code, _, err = cli("slide", a, "--detections", dets, "--model", trained_run, "--out", out)
    assert code == 0, err
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    code, _, err = cli("slide", b, "--detections", dets, "--model", trained_run, "--out", out)
    assert code == 2 and "Traceback" not in err, err
    assert str(Path(a).resolve()) in err.replace("\n", "") and "--overwrite" in err
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    other = _csv(tmp_path / "d2.csv", centres[4:8])
    code, _, err = cli("slide", a, "--detections", other, "--model", trained_run, "--out", out)
    assert code == 2 and "made from detections" in err and "--overwrite" in err, err
    code, _, err = cli("slide", b, "--detections", dets, "--model", trained_run, "--out", out, "--overwrite")
    assert code == 0, err
    assert json.loads((out / "case.summary.json").read_text())["slide"] == str(b.resolve())


@pytest.mark.parametrize("missing", ["slide", "detections", "model", "csv-row"])
def test_a_missing_input_is_one_clear_message(missing: str, slide, trained_run, tmp_path, cli) -> None:
    path, centres = slide
    dets, model = _csv(tmp_path / "d.csv", centres[:2]), trained_run
    if missing == "slide":
        path = tmp_path / "nowhere.svs"
    elif missing == "detections":
        dets = tmp_path / "nowhere.csv"
    elif missing == "model":
        model = tmp_path / "nowhere.safetensors"
    else:
        pairs = tmp_path / "pairs.csv"
        pd.DataFrame({"slide": ["gone.svs"], "detections": [dets.name]}).to_csv(pairs, index=False)
        code, _, err = cli("slide", pairs, "--model", model, "--out", tmp_path / "o")
        assert code == 2 and "gone.svs: no such slide" in err and "Traceback" not in err, err
        return
    code, _, err = cli("slide", path, "--detections", dets, "--model", model, "--out", tmp_path / "o")
    assert code == 2 and "nowhere" in err and "no such" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("option", "value", "needle"),
    [
        ("--mpp", "-1", "--mpp -1.0: not a resolution"),
        ("--mpp", "0", "--mpp 0.0: not a resolution"),
        ("--mpp", "nan", "--mpp nan"),
        ("--mpp", "0.011 --patch-mpp 2", "level-0 pixels a side"),  # each in range; the patch: 23,273 px
        ("--patch-mpp", "0", "--patch-mpp 0.0"),
        ("--patch-mpp", "inf", "--patch-mpp inf"),
        ("--tolerance", "-1", "--tolerance -1.0"),
        ("--threshold", "1.5", "--threshold 1.5"),
        ("--threshold", "0", "--threshold 0.0"),
    ],
)
def test_every_numeric_slide_option_is_range_checked(option, value, needle, tmp_path, cli) -> None:
    """Before any file is read: one message naming the option and its range, exit 2."""
    files = [
        "--detections",
        tmp_path / "d.csv",
        "--model",
        tmp_path / "m.safetensors",
        "--out",
        tmp_path / "o",
    ]
    code, _, err = cli("slide", tmp_path / "s.svs", *files, option, *value.split())
    assert code == 2 and needle in err and "Traceback" not in err, err


def test_a_bad_slide_in_a_batch_does_not_stop_the_others(slide, trained_run, tmp_path, cli) -> None:
    """good, broken, good: both good ones classified, the broken one listed with its reason, exit 1."""
    import shutil

    path, centres = slide
    dets = _csv(tmp_path / "d.csv", centres[:3])
    for name in ("first", "last"):
        shutil.copy(path, tmp_path / f"{name}.tif")
    (tmp_path / "broken.svs").write_bytes(b"not a slide" * 100)
    pairs = tmp_path / "slides.csv"
    pd.DataFrame({"slide": ["first.tif", "broken.svs", "last.tif"], "detections": [dets.name] * 3}).to_csv(
        pairs, index=False
    )
    code, _, err = cli("slide", pairs, "--model", trained_run, "--out", tmp_path / "o")
    assert code == 1 and "failed: broken:" in err and "not a slide OpenSlide can read" in err, err
    assert (tmp_path / "o" / "first.csv").is_file() and (tmp_path / "o" / "last.csv").is_file()
    assert not (tmp_path / "o" / "broken.csv").exists() and "Traceback" not in err


def test_an_mpp_contradicting_the_slides_metadata_needs_force(slide, trained_run, tmp_path, cli) -> None:
    """--mpp 0.5 on a 0.25 µm/px slide: refused naming both values; --force-mpp uses it, and the
    summary says which resolution was used and where it came from."""
    path, centres = slide
    dets, out = _csv(tmp_path / "d.csv", centres[:2]), tmp_path / "o"
    base = ("slide", path, "--detections", dets, "--model", trained_run, "--out", out)
    code, _, err = cli(*base, "--mpp", "0.5")
    assert code == 2 and "--mpp 0.5 contradicts the slide's own metadata (0.25 µm/px)" in err, err
    assert "--force-mpp" in err and not out.exists()
    code, _, err = cli(*base, "--mpp", "0.5", "--force-mpp")
    assert code == 0, err
    summary = json.loads((out / "slide.summary.json").read_text())
    assert summary["mpp"] == 0.5 and summary["mpp_source"].startswith(
        "--mpp (forced over the slide's metadata"
    )
    code, _, err = cli(*base, "--out", tmp_path / "o2")
    assert code == 0, err
    assert json.loads((tmp_path / "o2" / "slide.summary.json").read_text())["mpp_source"] == "slide metadata"


def test_two_processes_on_one_out_never_interleave_or_lose_a_file(slide, trained_run, tmp_path) -> None:
    """Two `mitobench slide` on the same slides.csv and --out at once: every slide's three files
    are there, complete and agreeing (atomic writes; the later process may skip finished slides)."""
    import shutil
    import subprocess
    import sys

    path, centres = slide
    dets = _csv(tmp_path / "d.csv", centres[:6])
    names = [f"s{i}" for i in range(3)]
    for name in names:
        shutil.copy(path, tmp_path / f"{name}.tif")
    pairs = tmp_path / "slides.csv"
    pd.DataFrame({"slide": [f"{n}.tif" for n in names], "detections": [dets.name] * 3}).to_csv(
        pairs, index=False
    )
    cmd = [sys.executable, "-m", "mitobench.cli", "slide", str(pairs), "--model", str(trained_run),
           "--out", str(tmp_path / "o")]  # fmt: skip
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-2000:]
    out = tmp_path / "o"
    assert sorted(f.name for f in out.iterdir()) == sorted(
        f"{n}{ext}" for n in names for ext in (".csv", ".geojson", ".summary.json")
    )  # no temporary file left behind
    for name in names:
        summary = json.loads((out / f"{name}.summary.json").read_text())
        calls = _slide_probs(out, name)
        geo = json.loads((out / f"{name}.geojson").read_text())
        assert summary["detections"] == len(calls) == len(geo["features"]) == 6
        assert summary["atypical"] == int((calls["class"] == "Atypical").sum())


def test_a_slide_name_too_long_for_its_outputs_is_refused_before_any_work(
    slide, trained_run, tmp_path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 245-byte slide name is legal, its `.summary.json` (258 bytes) is not: said up front."""
    import shutil

    import mitobench.slides.slide as slide_mod

    path, centres = slide
    long = tmp_path / ("s" * 245 + ".tif")
    shutil.copy(path, long)
    monkeypatch.setattr(slide_mod, "load_model", lambda p: pytest.fail("the model was loaded"))
    code, _, err = cli("slide", long, "--detections", _csv(tmp_path / "d.csv", centres[:2]),
                       "--model", trained_run, "--out", tmp_path / "o")  # fmt: skip
    assert code == 2 and "Traceback" not in err, err
    assert "258 bytes" in err and "this file system allows" in err and "shorter --out" in err, err
    assert not (tmp_path / "o").exists()
