"""Listing `<root>/<class>/<image>` folders, shared by the upstream and custom datasets."""

from __future__ import annotations

from pathlib import Path

from mitobench import ATYPICAL, NORMAL
from mitobench.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

CLASS_FOLDERS = {"Atypical": ATYPICAL, "Normal": NORMAL}
"""Upstream class folder names; lookups are case-insensitive."""

CLASS_ALIASES = {
    "atypical": ATYPICAL,
    "amf": ATYPICAL,
    "1": ATYPICAL,
    "true": ATYPICAL,
    "yes": ATYPICAL,
    "normal": NORMAL,
    "nmf": NORMAL,
    "0": NORMAL,
    "false": NORMAL,
    "no": NORMAL,
}


def parse_label(value: object, where: str) -> int:
    """Map a class name or 0/1 flag to 1 (atypical) / 0 (normal)."""
    key = str(value).strip().lower()
    if key not in CLASS_ALIASES:
        raise DataError(
            f"{where}: unknown label {value!r}",
            "use Atypical/Normal (or 1/0, with 1 = atypical)",
        )
    return CLASS_ALIASES[key]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name; other files are ignored."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def class_folders(root: Path, required: bool = True) -> dict[int, Path]:
    """Find the Atypical/Normal sub-folders of `root` (case-insensitive)."""
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder does not exist", "check --data-root")
    found: dict[int, Path] = {}
    for child in sorted(root.iterdir()):
        if child.is_dir() and child.name.lower() in CLASS_ALIASES:
            label = CLASS_ALIASES[child.name.lower()]
            if label in found:
                raise DataError(
                    f"{root}: both {found[label].name}/ and {child.name}/ hold class {label}",
                    "keep one folder per class",
                )
            found[label] = child
    if required:
        for name, label in CLASS_FOLDERS.items():
            if label not in found:
                raise DataError(
                    f"{root}: class folder {name}/ is missing",
                    f"create {root / name} with that class's images, or fix --data-root",
                )
    return found


def images_by_class(root: Path) -> dict[int, list[Path]]:
    """Images per class label under `root/{Atypical,Normal}`, refusing an empty class."""
    result: dict[int, list[Path]] = {}
    for label, folder in class_folders(root).items():
        images = list_images(folder)
        if not images:
            raise DataError(
                f"{folder}: class folder holds no images",
                f"put that class's images ({', '.join(sorted(IMAGE_SUFFIXES))}) into it",
            )
        result[label] = images
    return result
