"""sha256 manifests shipped with the package, and `mitobench data verify`."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from pathlib import Path

from mitobench import CLASS_NAMES
from mitobench.data.folders import images_by_class
from mitobench.data.images import FIX_UPSTREAM, read_image
from mitobench.data.registry import DATASETS
from mitobench.errors import DataError
from mitobench.progress import NullProgress, Progress

MANIFEST_DIR = "manifests"


def sha256_file(path: Path) -> str:
    return sha256_files([path])


def sha256_files(paths: Iterable[Path]) -> str:
    """sha256 of the files' contents one after the other, read in 1 MiB blocks."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            for chunk in iter(partial(fh.read, 1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def dataset_files(data_root: Path, name: str) -> list[Path]:
    """Every file a dataset owns: its image folder and its metadata files, sorted."""
    spec = DATASETS[name]
    folder = data_root / spec.folder
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return files + [data_root / f for f in spec.files if (data_root / f).is_file()]


def shipped_manifest(name: str) -> dict[str, str] | None:
    """The packaged manifest of a dataset as {relative path: sha256}, or None if none ships."""
    ref = resources.files("mitobench.data").joinpath(MANIFEST_DIR).joinpath(f"{name}.sha256")
    if not ref.is_file():
        return None
    entries = {}
    for line in ref.read_text().splitlines():
        if line.strip():
            digest, rel = line.split("  ", 1)
            entries[rel] = digest
    return entries


@dataclass
class VerifyResult:
    """Outcome of verifying one dataset: what was checked and every problem found."""

    name: str
    checked: int = 0
    method: str = "sha256"
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_dataset(data_root: Path, name: str, progress: Progress | None = None) -> VerifyResult:
    """Check a dataset against its shipped manifest, or (without one) its counts and decoding."""
    progress = progress or NullProgress()
    manifest = shipped_manifest(name)
    if manifest is None:
        return _verify_by_decoding(data_root, name, progress)
    result = VerifyResult(name)
    progress.start(f"verifying {DATASETS[name].title}", len(manifest))
    for rel, digest in manifest.items():
        path = data_root / rel
        if not path.is_file():
            result.problems.append(f"{path}: missing")
        elif sha256_file(path) != digest:
            result.problems.append(f"{path}: content differs from the release (sha256 mismatch)")
        result.checked += 1
        progress.advance()
    progress.finish()
    extra = {p.relative_to(data_root).as_posix() for p in dataset_files(data_root, name)}
    for rel in sorted(extra - set(manifest)):
        result.problems.append(f"{data_root / rel}: not part of the release")
    return result


def _verify_by_decoding(data_root: Path, name: str, progress: Progress) -> VerifyResult:
    spec = DATASETS[name]
    result = VerifyResult(name, method="counts+decode")
    try:
        by_class = images_by_class(data_root / spec.folder)
    except DataError as exc:
        result.problems.append(exc.message)
        return result
    n_atyp, n_norm = spec.counts["test"]
    for label, expected in ((1, n_atyp), (0, n_norm)):
        got = len(by_class.get(label, []))
        if got != expected:
            cls = CLASS_NAMES[label]
            result.problems.append(f"{data_root / spec.folder / cls}: {got} images, expected {expected}")
    paths = [p for group in by_class.values() for p in group]
    progress.start(f"decoding {spec.title}", len(paths))
    for p in paths:
        try:
            read_image(p, fix=FIX_UPSTREAM)
        except DataError as exc:
            result.problems.append(exc.message)
        result.checked += 1
        progress.advance()
    progress.finish()
    return result
