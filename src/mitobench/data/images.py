"""Decoding one image file into an RGB uint8 array, with errors that name the file."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from mitobench.errors import DataError

CONVERTIBLE_MODES = frozenset({"RGB", "RGBA", "RGBa", "L", "LA", "P", "PA", "CMYK", "YCbCr", "1"})
"""Modes converted to RGB (alpha dropped, grey replicated); any other mode is refused."""

FIX_OWN = "replace the file with a readable 8-bit image, or remove it from your data"
FIX_UPSTREAM = "the file is corrupt or truncated: re-download it (`mitobench data download --overwrite`)"
_PNG = b"\x89PNG\r\n\x1a\n"


def header_sizes(paths: Iterable[Path]) -> list[tuple[int, int]]:
    """(width, height) of each image file in order, read from its header only (nothing decoded)."""
    sizes = []
    for path in paths:
        with Image.open(path) as im:
            sizes.append(im.size)
    return sizes


def bits_per_sample(data: bytes, im: Image.Image) -> int:
    """Bits per channel as the file stores them (PIL reports 16-bit RGB PNGs as 8-bit 'RGB')."""
    if data[:8] == _PNG and len(data) > 24:
        return data[24]  # IHDR bit depth
    bits = getattr(im, "tag_v2", {}).get(258)  # TIFF BitsPerSample
    if bits:
        return max(bits) if isinstance(bits, tuple) else int(bits)
    return 8


def decode_image(
    data: bytes, path: Path, size: tuple[int, int] | None = None, fix: str = FIX_OWN
) -> np.ndarray:
    """Decode PNG/JPEG/TIFF bytes to an (H, W, 3) uint8 array.

    Grey, palette and RGBA images are converted to RGB; 16-bit and float images are refused
    because a silent rescale would change what the model sees. `size` (width, height) resizes
    with bicubic interpolation; without it the image keeps its own size. `fix` is the advice for
    an unreadable file (yours, or a release file to re-download).
    """
    if not data:
        raise DataError(f"{path}: empty file (0 bytes)", fix)
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            depth = bits_per_sample(data, im)
            if im.mode not in CONVERTIBLE_MODES or depth > 8:
                raise DataError(
                    f"{path}: a {depth}-bit {im.mode} image; mitobench reads 8-bit colour or grey",
                    "convert it to 8-bit RGB yourself (choosing how to map the extra bits) and retry",
                )
            rgb = im.convert("RGB") if im.mode != "RGB" else im
            if size is not None and rgb.size != tuple(size):
                rgb = rgb.resize(tuple(size), Image.Resampling.BICUBIC)
            return np.asarray(rgb, dtype=np.uint8).copy()
    except DataError:
        raise
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image PIL can read (PNG, JPEG, TIFF, BMP)", fix) from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: its header claims an enormous image ({exc})", bomb_fix(fix)) from None
    except (OSError, SyntaxError, ValueError, TypeError, EOFError) as exc:
        raise DataError(f"{path}: cannot decode image ({exc})", fix) from None


def bomb_fix(fix: str) -> str:
    """The advice for a file whose header claims billions of pixels: damaged, or not a patch."""
    return (
        f"a mitotic-figure patch is a few hundred pixels a side; the file is damaged or not a patch ({fix})"
    )


def read_image(path: str | Path, size: tuple[int, int] | None = None, fix: str = FIX_OWN) -> np.ndarray:
    """Read and decode one image file; see `decode_image`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist", "check the path or data root") from None
    except OSError as exc:
        raise DataError(
            f"{path}: cannot read image ({exc.strerror or exc})", "check file permissions"
        ) from None
    return decode_image(data, path, size, fix)
