"""Decode a dataset's images once into a uint8 array, cached in memory and on disk.

The disk entry is keyed by a hash of the image files' contents (and order and target size),
so it is invalidated when any file changes. A stat index (path, size, mtime) lets an unchanged
dataset skip re-reading its files; files copied elsewhere still hit via the content hash.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from mitobench.data.dataset import Dataset
from mitobench.data.images import decode_image
from mitobench.errors import DataError
from mitobench.paths import atomic_path, atomic_write_text, cache_dir
from mitobench.progress import NullProgress, Progress

FORMAT_VERSION = "1"
_MEMORY: dict[str, np.ndarray] = {}


def _stat_key(paths: list[Path], size: tuple[int, int] | None) -> str:
    h = hashlib.sha256(f"v{FORMAT_VERSION}|{size}".encode())
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            raise DataError(f"{p}: image file does not exist", "check the data root") from None
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


class ImageCache:
    """Maps a dataset to its (N, H, W, 3) uint8 image array."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or cache_dir()) / "images"

    def _array_path(self, content_key: str) -> Path:
        return self.root / f"{content_key}.npy"

    def _stat_path(self, stat_key: str) -> Path:
        return self.root / "stat" / f"{stat_key}.json"

    def load(self, dataset: Dataset, progress: Progress | None = None) -> np.ndarray:
        """The images of `dataset` in its order; decodes only on a cache miss."""
        return self.load_keyed(dataset, progress)[0]

    def load_keyed(self, dataset: Dataset, progress: Progress | None = None) -> tuple[np.ndarray, str]:
        """The images and their content hash (which keys caches derived from them)."""
        progress = progress or NullProgress()
        paths = dataset.paths
        size = dataset.image_size
        if not paths:
            raise DataError(f"{dataset.key}: dataset has no images", "check the data root")
        stat_key = _stat_key(paths, size)
        content_key = self._lookup_stat(stat_key)
        if content_key is not None:
            cached = self._read(content_key)
            if cached is not None:
                return cached, content_key
        blobs, content_key = self._hash_contents(paths, size, progress)
        cached = self._read(content_key)
        if cached is None:
            cached = self._decode(blobs, paths, size, progress)
            with atomic_path(self._array_path(content_key)) as tmp, open(tmp, "wb") as fh:
                np.save(fh, cached)
            _MEMORY[content_key] = cached
        atomic_write_text(self._stat_path(stat_key), json.dumps({"content": content_key}))
        return cached, content_key

    def _lookup_stat(self, stat_key: str) -> str | None:
        path = self._stat_path(stat_key)
        try:
            return json.loads(path.read_text())["content"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    def _read(self, content_key: str) -> np.ndarray | None:
        if content_key in _MEMORY:
            return _MEMORY[content_key]
        path = self._array_path(content_key)
        if not path.is_file():
            return None
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError):
            path.unlink(missing_ok=True)  # unreadable entry: rebuild it
            return None
        _MEMORY[content_key] = array
        return array

    @staticmethod
    def _hash_contents(
        paths: list[Path], size: tuple[int, int] | None, progress: Progress
    ) -> tuple[list[bytes], str]:
        h = hashlib.sha256(f"v{FORMAT_VERSION}|{size}".encode())
        blobs = []
        progress.start("hashing images", len(paths))
        for p in paths:
            try:
                data = p.read_bytes()
            except FileNotFoundError:
                raise DataError(f"{p}: image file does not exist", "check the data root") from None
            h.update(hashlib.sha256(data).digest())
            blobs.append(data)
            progress.advance()
        progress.finish()
        return blobs, h.hexdigest()[:32]

    @staticmethod
    def _decode(
        blobs: list[bytes], paths: list[Path], size: tuple[int, int] | None, progress: Progress
    ) -> np.ndarray:
        progress.start("decoding images", len(paths))
        first = decode_image(blobs[0], paths[0], size)
        out = np.empty((len(paths), *first.shape), dtype=np.uint8)
        out[0] = first
        progress.advance()
        for i in range(1, len(paths)):
            img = decode_image(blobs[i], paths[i], size)
            if img.shape != first.shape:
                raise DataError(
                    f"{paths[i]}: image is {img.shape[1]}x{img.shape[0]} px but "
                    f"{paths[0].name} is {first.shape[1]}x{first.shape[0]} px",
                    "give all patches one size, or set an image size so they are resized",
                )
            out[i] = img
            progress.advance()
        progress.finish()
        return out


def clear_memory() -> None:
    """Forget the in-memory arrays (tests use this to force a disk read)."""
    _MEMORY.clear()
