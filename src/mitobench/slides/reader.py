"""Cutting a patch centred on a detection out of a whole-slide image, at the training resolution.

AMi-Br's patches are 128x128 px at about 0.25 µm/px. A slide whose level-0 resolution differs by
more than `tolerance` is resampled: the patch covers 128 * patch_mpp / slide_mpp level-0 pixels,
read from the best pyramid level and resized to 128 (antialiased bicubic). A patch reaching over
the slide's edge is filled by reflecting the pixels inside it, and flagged; none is dropped.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
from PIL import Image

from mitobench.data.geometry import PAPER_PATCH
from mitobench.errors import ConfigError, DataError

MPP_TOLERANCE = 0.1
"""Relative difference of resolution under which a slide is read as it is (scanners' 0.23-0.27)."""


def _openslide():
    try:
        import openslide
    except ImportError:
        raise ConfigError(
            "reading slides needs OpenSlide",
            "pip install 'mitobench[slides]' (openslide-python, openslide-bin)",
        ) from None
    return openslide


class SlideReader:
    """One slide, opened once per reading thread; `patch(x, y)` gives (uint8 RGB patch, padded)."""

    def __init__(
        self,
        path: Path,
        mpp: float | None = None,
        patch_size: int = PAPER_PATCH.size,
        patch_mpp: float = PAPER_PATCH.mpp,
        tolerance: float = MPP_TOLERANCE,
        force_mpp: bool = False,
    ) -> None:
        self.path = path
        slide = self._open()
        self._local = threading.local()
        self._local.slide = slide
        self.width, self.height = slide.dimensions
        self.mpp, self.mpp_source = self._resolution(slide, mpp, tolerance, force_mpp)
        self.patch_size = patch_size
        scale = patch_mpp / self.mpp
        self.resampled = abs(scale - 1) > tolerance
        self.scale = scale if self.resampled else 1.0
        self.side0 = round(patch_size * self.scale)
        """Level-0 pixels a patch covers."""
        self.level = slide.get_best_level_for_downsample(self.scale) if self.scale > 1 else 0
        self.downsample = float(slide.level_downsamples[self.level])

    def _open(self):
        openslide = _openslide()
        if not self.path.is_file():
            raise DataError(f"{self.path}: slide file does not exist", "check the path")
        try:
            return openslide.OpenSlide(str(self.path))
        except (openslide.OpenSlideError, openslide.OpenSlideUnsupportedFormatError, OSError) as exc:
            raise DataError(
                f"{self.path}: not a slide OpenSlide can read ({exc})",
                "use SVS, NDPI, MRXS, tiled TIFF or another OpenSlide format, or check the file is complete",
            ) from None

    def _resolution(self, slide, given: float | None, tolerance: float, force: bool) -> tuple[float, str]:
        """(level-0 µm/px, where it came from). A `--mpp` that contradicts the slide's own metadata
        by more than `tolerance` is refused unless forced: one of the two is wrong, and the patches
        would be cut at the wrong scale without a word."""
        own = self._metadata_mpp(slide)
        if given is None:
            if own is None:
                raise DataError(
                    f"{self.path}: the slide has no resolution metadata (microns per pixel)",
                    "pass --mpp with the slide's level-0 microns per pixel, e.g. --mpp 0.25",
                )
            return own, "slide metadata"
        if own is None:
            return given, "--mpp (the slide has no resolution metadata)"
        if abs(given / own - 1) > tolerance and not force:
            raise DataError(
                f"{self.path}: --mpp {given} contradicts the slide's own metadata ({own:g} µm/px)",
                "drop --mpp to use the slide's, or pass --force-mpp if the metadata is wrong",
            )
        forced = abs(given / own - 1) > tolerance
        return (
            given,
            f"--mpp ({'forced over' if forced else 'agrees with'} the slide's metadata, {own:g} µm/px)",
        )

    def _metadata_mpp(self, slide) -> float | None:
        value = slide.properties.get("openslide.mpp-x")
        try:
            mpp = float(value) if value is not None else math.nan
        except ValueError:
            mpp = math.nan
        return mpp if mpp > 0 and math.isfinite(mpp) else None

    @property
    def _slide(self):
        slide = getattr(self._local, "slide", None)
        if slide is None:  # another reading thread: its own handle
            slide = self._local.slide = self._open()
        return slide

    def inside(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return (x >= 0) & (y >= 0) & (x < self.width) & (y < self.height)

    def patch(self, x: float, y: float) -> tuple[np.ndarray, bool]:
        """The patch centred on level-0 (x, y), and whether it reached over the slide's edge."""
        x0, y0 = round(x - self.side0 / 2), round(y - self.side0 / 2)
        x1, y1 = x0 + self.side0, y0 + self.side0
        padded = x0 < 0 or y0 < 0 or x1 > self.width or y1 > self.height
        side = round(self.side0 / self.downsample)
        region = np.asarray(self._slide.read_region((x0, y0), self.level, (side, side)).convert("RGB"))
        if padded:
            region = _reflect_outside(region, x0, y0, self.width, self.height, self.downsample)
        if side != self.patch_size:
            region = np.asarray(
                Image.fromarray(region).resize((self.patch_size, self.patch_size), Image.Resampling.BICUBIC)
            )
        return region, padded


def _reflect_outside(region: np.ndarray, x0: int, y0: int, width: int, height: int, ds: float) -> np.ndarray:
    """Replace the part of `region` outside the slide by a reflection of the part inside."""
    side = region.shape[0]
    left = min(side, max(0, math.ceil(-x0 / ds)))
    top = min(side, max(0, math.ceil(-y0 / ds)))
    right = min(side, max(0, math.ceil((x0 + side * ds - width) / ds)))
    bottom = min(side, max(0, math.ceil((y0 + side * ds - height) / ds)))
    inner = region[top : side - bottom, left : side - right]
    if inner.size == 0:
        return region
    return np.pad(inner, ((top, bottom), (left, right), (0, 0)), mode="symmetric")
