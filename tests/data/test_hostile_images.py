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
