"""Bad images and folders get an error naming them (or are ignored when they are not data);
nothing is dropped or misread without a word."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mitobench.data.cache import ImageCache, clear_memory
from mitobench.data.custom import load_csv, load_folder
from mitobench.data.images import read_image
from mitobench.data.registry import load
from mitobench.errors import DataError
from tests.conftest import make_atnorm, write_png


def _png16(path: Path, rgb: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG written by hand (PIL cannot write one)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    h, w, _ = rgb.shape
    rows = b"".join(b"\x00" + rgb[y].astype(">u2").tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


def test_a_16_bit_rgb_png_is_refused_though_pil_calls_it_rgb(tmp_path: Path) -> None:
    p = _png16(tmp_path / "deep.png", np.full((8, 8, 3), 4095, dtype=np.uint16))  # 12-bit data
    with Image.open(p) as im:
        assert im.mode == "RGB"  # PIL keeps the high byte: a near-black 8-bit image
    with pytest.raises(DataError, match="16-bit RGB image"):
        read_image(p)


def test_a_misspelt_class_folder_is_named(tmp_path: Path) -> None:
    root = make_atnorm(tmp_path, "set")
    (root / "set" / "Atypical").rename(root / "set" / "Atypcial")
    (root / "set" / "Atypical").mkdir()
    write_png(root / "set" / "Atypical" / "x.png")
    with pytest.raises(DataError, match=r"Atypcial/ are not a class"):
        load_folder(root / "set")


def test_images_in_sub_folders_are_named_not_dropped(tmp_path: Path) -> None:
    root = make_atnorm(tmp_path, "set")
    write_png(root / "set" / "Normal" / "slide7" / "n1.png")
    with pytest.raises(DataError, match=r"1 image\(s\) in sub-folders, e\.g\. .*slide7/n1\.png"):
        load_folder(root / "set")


def test_apple_double_and_hidden_files_are_ignored(tmp_path: Path) -> None:
    root = make_atnorm(tmp_path, "set")
    (root / "set" / "Normal" / "._1.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble junk")
    (root / "set" / ".DS_Store").write_bytes(b"junk")
    (root / "set" / ".Trashes").mkdir()
    ds = load_folder(root / "set")
    assert len(ds) == 8 and not any("._" in i for i in ds.ids)
    assert ImageCache().load(ds).shape[0] == 8


def test_a_changed_image_with_the_same_size_and_time_is_not_served_stale(tmp_path: Path) -> None:
    root = make_atnorm(tmp_path, "set")
    ds = load_folder(root / "set")
    victim = Path(ds.paths[0])
    raw = np.asarray(Image.open(victim).convert("RGB"))
    Image.fromarray(raw).save(victim, compress_level=0)  # uncompressed: the size depends on the shape only
    first = ImageCache().load(ds).copy()
    before = victim.stat()
    Image.fromarray(255 - raw).save(victim, compress_level=0)
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = victim.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    clear_memory()
    again = ImageCache().load(ds)
    assert np.array_equal(again[0], 255 - raw) and not np.array_equal(again[0], first[0])


def test_an_empty_file_says_so(tmp_path: Path) -> None:
    p = tmp_path / "zero.png"
    p.write_bytes(b"")
    with pytest.raises(DataError) as err:
        read_image(p)
    assert "empty file (0 bytes)" in str(err.value) and "<" not in str(err.value)


def test_the_fix_fits_the_cause(tmp_path: Path, synth_root: Path) -> None:
    root = make_atnorm(tmp_path, "mine")
    bad = root / "mine" / "Normal" / "4.png"
    bad.write_bytes(b"not an image")
    pd.DataFrame({"path": [str(bad), str(root / "mine" / "Atypical" / "1.png")], "label": [0, 1]}).to_csv(
        tmp_path / "mine.csv", index=False
    )
    with pytest.raises(DataError) as own:
        ImageCache().load(load_csv(tmp_path / "mine.csv"))
    assert "re-download" not in str(own.value) and "your data" in str(own.value)
    (synth_root / "AtNorM-Br" / "Normal" / "4.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="re-download") as upstream:
        ImageCache().load(load("atnorm-br", synth_root))
    assert "<_io" not in str(upstream.value)


def test_a_csv_to_classify_without_a_path_column_asks_for_path_only(tmp_path: Path) -> None:
    """Prediction needs no label: its CSV's fix names `path` alone; a training CSV's names both."""
    csv = tmp_path / "list.csv"
    csv.write_text("file\nx.png\n")
    with pytest.raises(DataError) as unlabelled:
        load_csv(csv, require_labels=False)
    assert "['path']" in unlabelled.value.message and "label" not in (unlabelled.value.fix or "")
    with pytest.raises(DataError) as labelled:
        load_csv(csv)
    assert "['path', 'label']" in labelled.value.message and "label" in (labelled.value.fix or "")
