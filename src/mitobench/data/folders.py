"""Listing `<root>/<class>/<image>` folders, shared by the upstream and custom datasets."""

from __future__ import annotations

from pathlib import Path

from mitobench import ATYPICAL, CLASS_NAMES, NORMAL
from mitobench.errors import DataError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})

CLASS_FOLDERS = {name: label for label, name in CLASS_NAMES.items()}
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


def is_hidden(path: Path) -> bool:
    """Dot files and folders, including macOS AppleDouble `._name` files: never data."""
    return path.name.startswith(".")


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside a class folder, sorted by name.

    Hidden files (`.DS_Store`, AppleDouble `._x.png`) are ignored; an image in a sub-folder is an
    error naming it, since it would otherwise be dropped without a word.
    """
    images, nested = [], []
    for p in folder.iterdir():
        if is_hidden(p):
            continue
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            images.append(p)
        elif p.is_dir():
            nested += [q for q in p.rglob("*") if q.suffix.lower() in IMAGE_SUFFIXES and not is_hidden(q)]
    if nested:
        raise DataError(
            f"{folder}: {len(nested)} image(s) in sub-folders, e.g. {nested[0]}",
            f"move them directly into {folder.name}/ (class folders hold images, not folders)",
        )
    return sorted(images)


def class_folders(root: Path, required: bool = True) -> dict[int, Path]:
    """Find the Atypical/Normal sub-folders of `root` (case-insensitive); any other visible
    sub-folder is an error naming it (e.g. a misspelt `Atypcial/`), hidden ones are ignored."""
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder does not exist", "check --data-root")
    found: dict[int, Path] = {}
    unknown = []
    for child in sorted(root.iterdir()):
        if not child.is_dir() or is_hidden(child):
            continue
        if child.name.lower() not in CLASS_ALIASES:
            unknown.append(child.name)
            continue
        label = CLASS_ALIASES[child.name.lower()]
        if label in found:
            raise DataError(
                f"{root}: both {found[label].name}/ and {child.name}/ hold class {label}",
                "keep one folder per class",
            )
        found[label] = child
    if unknown:
        raise DataError(
            f"{root}: folder(s) {', '.join(f'{n}/' for n in unknown)} are not a class",
            "name class folders Atypical/ and Normal/ (or 1/ and 0/), and move anything else out",
        )
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
