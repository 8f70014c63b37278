"""Multi-page TIFF stacks of patches (MIDOG 2025 Track 2: up to 16 pages of 128x128 RGB, one
mitotic figure per page), read page by page with the same decoding rules as single images."""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageSequence, UnidentifiedImageError

from mitobench.data.cache import ImageCache
from mitobench.data.custom import load_csv, load_unlabelled_folder, text_id
from mitobench.data.dataset import Dataset
from mitobench.data.images import FIX_OWN, bits_per_sample, bomb_fix, header_sizes, read_image
from mitobench.errors import DataError

STACK_SUFFIXES = (".tif", ".tiff")
PAGE_SIZE = (128, 128)


def is_stack(path: Path) -> bool:
    """A TIFF with more than one page."""
    if path.suffix.lower() not in STACK_SUFFIXES:
        return False
    try:
        with Image.open(path) as im:
            return getattr(im, "n_frames", 1) > 1
    except (UnidentifiedImageError, OSError):
        return False


def read_stack(path: Path, page_size: tuple[int, int] | None = PAGE_SIZE) -> np.ndarray:
    """(pages, H, W, 3) uint8, in page order; every page must be 8-bit RGB of `page_size`."""
    if not path.is_file():
        raise DataError(f"{path}: stack file does not exist", "check the path")
    pages = []
    try:
        with Image.open(path) as im:
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                where = f"{path} page {i + 1}"
                depth = bits_per_sample(b"", frame)
                if frame.mode != "RGB" or depth > 8 or (page_size is not None and frame.size != page_size):
                    want = f"{page_size[0]}x{page_size[1]} " if page_size else ""
                    raise DataError(
                        f"{where} is a {frame.size[0]}x{frame.size[1]} {depth}-bit {frame.mode} image, "
                        f"not {want}8-bit RGB",
                        f"write each page as a {want}8-bit RGB image",
                    )
                pages.append(np.asarray(frame.convert("RGB"), dtype=np.uint8).copy())
    except DataError:
        raise
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: its header claims an enormous image ({exc})", bomb_fix(FIX_OWN)) from None
    except (UnidentifiedImageError, OSError, ValueError, TypeError, SyntaxError, EOFError) as exc:
        raise DataError(
            f"{path}: not a readable TIFF stack, or cut short ({type(exc).__name__}: {exc})", FIX_OWN
        ) from None
    if not pages:
        raise DataError(f"{path}: the stack has no pages", FIX_OWN)
    return np.stack(pages)


def stack_ids(path: Path, n: int) -> list[str]:
    """`name.tif#1` … `name.tif#n`: one id per page, in page order."""
    return [f"{text_id(Path(path.name))}#{i + 1}" for i in range(n)]


def patches_to_predict(inputs: Path, size: tuple[int, int]) -> tuple[Dataset, np.ndarray]:
    """(dataset of ids, uint8 patches) from a folder of patches and/or TIFF stacks, a stack, or a
    CSV with a `path` column; other sizes than `size` are resized to it, with a warning (stack
    pages must be `size`)."""
    if inputs.is_file() and inputs.suffix.lower() == ".csv":
        ds = load_csv(inputs, require_labels=False)
    elif inputs.is_file() and inputs.suffix.lower() in STACK_SUFFIXES:
        images = read_stack(inputs, size)
        return _unlabelled(stack_ids(inputs, len(images)), [inputs] * len(images), inputs.stem), images
    else:
        ds = load_unlabelled_folder(inputs)
    ds = Dataset(ds.name, ds.split, ds.frame, image_size=size, source=ds.source)
    stacks = [is_stack(p) for p in ds.paths]
    singles = [p for p, s in zip(ds.paths, stacks, strict=True) if not s]
    if not any(stacks):
        images = ImageCache().load(ds)
        warn_resized(singles, size)  # after decoding: every file is readable
        return ds, images
    ids, paths, parts = [], [], []
    for i, p, stack in zip(ds.ids, ds.paths, stacks, strict=True):
        if stack:
            pages = read_stack(p, size)
            ids += [f"{i}#{k + 1}" for k in range(len(pages))]
        else:
            pages = read_image(p, size)[None]
            ids.append(i)
        paths += [p] * len(pages)
        parts.append(pages)
    warn_resized(singles, size)
    return _unlabelled(ids, paths, ds.name), np.concatenate(parts)


def warn_resized(paths: Sequence[Path], size: tuple[int, int]) -> None:
    """Warn when images are not `size` (width, height): resized to it, a patch cut with a larger or
    smaller field of view reaches the model at another scale, which no error would reveal. Reads
    headers only, of files already decoded."""
    others = [(p, found) for p, found in zip(paths, header_sizes(paths), strict=True) if found != size]
    if not others:
        return
    counts = Counter(found for _, found in others)
    w, h = size
    shown = ", ".join(f"{n} at {a}x{b}" for (a, b), n in counts.most_common(3))
    more = f" and {len(counts) - 3} other sizes" if len(counts) > 3 else ""
    warnings.warn(
        f"{len(others)} of {len(paths)} patches are not {w}x{h} px ({shown}{more}; e.g. {others[0][0]}): "
        f"they are resized to {w}x{h}, which is right only if each shows the field of view the "
        f"model was trained on (`mitobench models info` gives its patch size and µm per pixel); "
        f"otherwise crop {w}x{h} px around each figure at that resolution (`mitobench slide` cuts "
        "them from slides)",
        UserWarning,
        stacklevel=2,
    )


def _unlabelled(ids: list[str], paths: list[Path], name: str) -> Dataset:
    frame = pd.DataFrame({"id": ids, "path": [str(p) for p in paths], "label": -1, "group": pd.NA})
    return Dataset(name, "all", frame)
