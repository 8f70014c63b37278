"""Images are decoded once, cached on disk by content, and invalidated when files change."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mitobench.data import cache as cache_mod
from mitobench.data.cache import ImageCache
from mitobench.data.images import read_image
from mitobench.data.registry import load
from tests.conftest import write_png


@pytest.fixture
def decode_counter(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls = [0]
    real = cache_mod.decode_image

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "decode_image", counting)
    return calls


def test_array_matches_decoded_files(synth_root: Path) -> None:
    ds = load("atnorm-br", synth_root)
    images = ImageCache().load(ds)
    assert images.dtype == np.uint8 and images.shape == (8, 16, 16, 3)
    for i, p in enumerate(ds.paths):
        np.testing.assert_array_equal(images[i], read_image(p))


def test_second_load_decodes_nothing_even_from_disk(synth_root: Path, decode_counter) -> None:
    ds = load("atnorm-br", synth_root)
    ImageCache().load(ds)
    assert decode_counter[0] == 8
    cache_mod.clear_memory()  # a new process: only the disk cache remains
    ImageCache().load(ds)
    assert decode_counter[0] == 8


def test_changed_file_invalidates_the_cache(synth_root: Path, decode_counter) -> None:
    ds = load("atnorm-br", synth_root)
    before = ImageCache().load(ds).copy()
    write_png(ds.paths[0], np.zeros((16, 16, 3), np.uint8))
    after = ImageCache().load(ds)
    assert decode_counter[0] == 16
    assert after[0].max() == 0 and before[0].max() > 0


def test_copied_data_hits_the_content_cache(synth_root: Path, tmp_path: Path, decode_counter) -> None:
    ImageCache().load(load("atnorm-br", synth_root))
    copy = tmp_path / "copy"
    shutil.copytree(synth_root, copy)
    ImageCache().load(load("atnorm-br", copy))
    assert decode_counter[0] == 8


def test_interrupted_write_leaves_no_cache_file(synth_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load("atnorm-br", synth_root)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_mod.np, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ImageCache().load(ds)
    root = ImageCache().root
    assert not list(root.glob("*.npy")) and not list(root.glob(".*tmp"))
    monkeypatch.undo()
    assert ImageCache().load(ds).shape[0] == 8


def test_unreadable_cache_entry_is_rebuilt(synth_root: Path) -> None:
    ds = load("atnorm-br", synth_root)
    good = ImageCache().load(ds).copy()
    cache_mod.clear_memory()
    for f in ImageCache().root.glob("*.npy"):
        f.write_bytes(b"garbage")
    np.testing.assert_array_equal(ImageCache().load(ds), good)
