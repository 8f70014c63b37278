"""Patches to classify: a folder (or CSV) of images of another size than the model's is resized to
it, and the user is told, since a different field of view changes the scale silently."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from mitobench.data.stacks import patches_to_predict
from tests.conftest import write_png


def _patch(side: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)


def test_patches_of_another_size_are_resized_with_a_warning_naming_count_sizes_and_a_file(
    tmp_path: Path,
) -> None:
    write_png(tmp_path / "a.png", _patch(128, 0))
    write_png(tmp_path / "b.png", _patch(256, 1))
    write_png(tmp_path / "c.png", _patch(256, 2))
    write_png(tmp_path / "d.png", _patch(64, 3))
    with pytest.warns(
        UserWarning, match=r"3 of 4 patches are not 128x128 px \(2 at 256x256, 1 at 64x64; e\.g\. "
    ) as w:
        ds, images = patches_to_predict(tmp_path, (128, 128))
    assert len(w) == 1 and "b.png" in str(w[0].message) and "mitobench models info" in str(w[0].message)
    assert images.shape == (4, 128, 128, 3) and len(ds) == 4


def test_patches_of_the_models_size_raise_no_warning(tmp_path: Path) -> None:
    for k in range(3):
        write_png(tmp_path / f"{k}.png", _patch(128, k), mode="RGBA" if k else "RGB")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, images = patches_to_predict(tmp_path, (128, 128))
    assert images.shape == (3, 128, 128, 3)


def test_an_unreadable_file_is_left_to_the_decoding_error(tmp_path: Path) -> None:
    from mitobench.errors import DataError

    write_png(tmp_path / "a.png", _patch(128, 0))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    with pytest.raises(DataError, match=r"broken\.png: not an image PIL can read"):
        patches_to_predict(tmp_path, (128, 128))
