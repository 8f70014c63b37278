"""MIDOG 2025 Track 2 I/O: stacks of real patches give the PNGs' probabilities, and the output
JSON has the challenge's exact shape."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mitobench.inference.midog import RESULT, STACKS


def _write_stack(path: Path, pages: list[np.ndarray]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    first, *rest = (Image.fromarray(p) for p in pages)
    first.save(path, save_all=True, append_images=rest, compression="tiff_deflate")
    return path


def test_the_container_command_writes_the_challenges_json(
    real_patches,
    trained_run,
    png_probs,
    tmp_path,
    cli,
) -> None:
    _write_stack(tmp_path / "in" / STACKS / "case.tif", real_patches[1])
    bundle = tmp_path / "model" / "mitobench.safetensors"
    code, _, err = cli("export", trained_run, "--out", bundle)
    assert code == 0, err
    code, _, err = cli(
        "midog", "--input", tmp_path / "in", "--output", tmp_path / "out", "--model", bundle.parent
    )
    assert code == 0, err
    result = json.loads((tmp_path / "out" / RESULT).read_text())
    assert isinstance(result, list) and len(result) == 16
    for entry, expected, label in zip(result, png_probs["probability"], png_probs["label"], strict=True):
        assert set(entry) == {"class", "confidence"}
        assert entry["class"] in {"atypical", "normal"} and entry["class"] == label.lower()
        assert isinstance(entry["confidence"], float)  # P(atypical), never the winning class's
        assert entry["confidence"] == pytest.approx(expected, abs=1e-4)


def test_predict_reads_a_stack_page_by_page(real_patches, trained_run, png_probs, tmp_path, cli) -> None:
    stack = _write_stack(tmp_path / "case.tiff", real_patches[1])
    code, _, err = cli("predict", trained_run, stack, "--out", tmp_path / "p.csv")
    assert code == 0, err
    got = pd.read_csv(tmp_path / "p.csv")
    assert got["id"].tolist() == [f"case.tiff#{i + 1}" for i in range(16)]
    np.testing.assert_allclose(got["probability"], png_probs["probability"], atol=1e-4)
    folder = tmp_path / "mixed"
    _write_stack(folder / "a.tif", real_patches[1][:3])
    Image.fromarray(real_patches[1][3]).save(folder / "b.png")
    code, _, err = cli("predict", trained_run, folder, "--out", tmp_path / "q.csv")
    assert code == 0, err
    got = pd.read_csv(tmp_path / "q.csv")
    assert got["id"].tolist() == ["a.tif#1", "a.tif#2", "a.tif#3", "b.png"]
    np.testing.assert_allclose(got["probability"], png_probs["probability"][:4], atol=1e-4)


def test_a_page_of_the_wrong_size_is_one_clear_message(real_patches, trained_run, tmp_path, cli) -> None:
    pages = [real_patches[1][0], np.zeros((100, 128, 3), np.uint8)]
    _write_stack(tmp_path / "in" / STACKS / "bad.tif", pages)
    code, _, err = cli(
        "midog", "--input", tmp_path / "in", "--output", tmp_path / "out", "--model", trained_run
    )
    assert code == 2 and "bad.tif page 2 is a 128x100" in err and "not 128x128 8-bit RGB" in err
    assert "Traceback" not in err


def test_an_empty_input_folder_is_one_clear_message(trained_run, tmp_path, cli) -> None:
    (tmp_path / "in" / STACKS).mkdir(parents=True)
    code, _, err = cli(
        "midog", "--input", tmp_path / "in", "--output", tmp_path / "out", "--model", trained_run
    )
    assert code == 2 and "no TIFF stacks" in err and "Traceback" not in err


def test_an_output_that_is_a_file_is_refused_before_any_stack_is_read(
    real_patches, trained_run, tmp_path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mitobench.inference import midog

    _write_stack(tmp_path / "in" / STACKS / "a.tif", real_patches[1][:2])
    (tmp_path / "out").write_text("a file")
    monkeypatch.setattr(midog, "read_stack", lambda p: pytest.fail("a stack was read"))
    code, _, err = cli(
        "midog", "--input", tmp_path / "in", "--output", tmp_path / "out", "--model", trained_run
    )
    assert code == 2 and "is a file, not a folder" in err and "--output" in err and "Traceback" not in err, (
        err
    )
