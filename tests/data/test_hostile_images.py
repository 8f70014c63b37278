"""Images and stacks that are cut short or whose header lies: one message, never a traceback."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mitobench.data.images import decode_image
from mitobench.data.stacks import read_stack
from mitobench.errors import DataError


def _bomb_png() -> bytes:
    """A valid 1x1 PNG whose header claims 100,000 x 100,000 pixels (CRC fixed)."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", 100_000, 100_000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_an_image_claiming_billions_of_pixels_is_one_message(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="claims an enormous image"):
        decode_image(_bomb_png(), tmp_path / "bomb.png")
    path = tmp_path / "bomb.tif"
    path.write_bytes(_bomb_png())
    with pytest.raises(DataError, match="claims an enormous image"):
        read_stack(path, None)


def test_a_stack_cut_in_half_is_one_message(tmp_path: Path) -> None:
    import tifffile

    whole = tmp_path / "whole.tif"
    tifffile.imwrite(whole, np.zeros((4, 128, 128, 3), np.uint8), photometric="rgb")
    half = tmp_path / "half.tif"
    half.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError, match="not a readable TIFF stack, or cut short"):
        read_stack(half)


def test_a_file_name_that_is_not_utf8_becomes_a_writable_id(tmp_path: Path) -> None:
    """A name made on another system (bytes 0xff 0xfe): the id is escaped text, so the CSV and JSON
    outputs can be written after the work instead of failing."""
    import os

    from mitobench.data.custom import load_unlabelled_folder

    folder = tmp_path / "in"
    folder.mkdir()
    try:
        with open(os.path.join(os.fsencode(folder), b"bad\xff\xfename.png"), "wb") as fh:
            Image.new("RGB", (128, 128)).save(fh, "PNG")
    except OSError:
        pytest.skip("this file system refuses names that are not UTF-8")
    ids = load_unlabelled_folder(folder).ids
    assert ids == ["bad\\xff\\xfename.png"]
    assert ids[0].encode("utf-8")  # writable anywhere
