"""Decoding one image file into an RGB uint8 array, with errors that name the file."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mitobench.errors import DataError

CONVERTIBLE_MODES = frozenset({"RGB", "RGBA", "RGBa", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"})
"""Modes converted to RGB (alpha dropped, grey replicated); any other mode is refused."""


def decode_image(data: bytes, path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode PNG/JPEG/TIFF bytes to an (H, W, 3) uint8 array.

    Grey, palette and RGBA images are converted to RGB; 16-bit and float images are refused
    because a silent rescale would change what the model sees. `size` (width, height) resizes
    with bicubic interpolation; without it the image keeps its own size.
    """
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.mode not in CONVERTIBLE_MODES:
                raise DataError(
                    f"{path}: image mode {im.mode!r} is not 8-bit colour or grey",
                    "convert the image to 8-bit RGB (e.g. PIL `im.convert('RGB')`) and retry",
                )
            rgb = im.convert("RGB") if im.mode != "RGB" else im
            if size is not None and rgb.size != tuple(size):
                rgb = rgb.resize(tuple(size), Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8).copy()
    except DataError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot decode image ({exc})",
            "the file is corrupt or truncated: re-download it (`mitobench data download`) "
            "or remove it from the dataset",
        ) from None


def read_image(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Read and decode one image file; see `decode_image`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist", "check the path or data root") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({exc})", "check file permissions") from None
    return decode_image(data, path, size)
