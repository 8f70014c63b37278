"""A real-pixel slide: a tiled, pyramidal TIFF whose tiles hold real AMi-Br patches at known places."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

GRID = 4
SPACING = 200
"""Patches sit every 200 px, on a white background, the first at (40, 40)."""


def write_slide(
    path: Path, patches: list[np.ndarray], mpp: float = 0.25, scale: int = 1
) -> list[tuple[int, int]]:
    """A 2-level tiled TIFF of `patches` (each upscaled `scale` times) with resolution tags; returns
    the level-0 centre of each patch."""
    import tifffile

    side = 128 * scale
    size = 40 * scale + GRID * SPACING * scale
    canvas = np.full((size, size, 3), 245, dtype=np.uint8)
    centres = []
    for i, patch in enumerate(patches):
        top, left = (40 + (i // GRID) * SPACING) * scale, (40 + (i % GRID) * SPACING) * scale
        big = (
            np.asarray(Image.fromarray(patch).resize((side, side), Image.Resampling.NEAREST))
            if scale > 1
            else patch
        )
        canvas[top : top + side, left : left + side] = big
        centres.append((left + side // 2, top + side // 2))
    with tifffile.TiffWriter(path) as tw:
        for level in range(2):
            data = canvas if level == 0 else np.asarray(Image.fromarray(canvas).reduce(2))
            res = 1e4 / (mpp * 2**level)
            tw.write(
                data,
                tile=(256, 256),
                photometric="rgb",
                compression="zlib",
                resolution=(res, res),
                resolutionunit="CENTIMETER",
                subfiletype=1 if level else 0,
            )
    return centres
