"""`mitobench data download`: fetch the upstream archive and lay its datasets into a data root."""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from mitobench.config_file import packaged_yaml
from mitobench.data.manifest import verify_dataset
from mitobench.data.registry import DATASETS
from mitobench.errors import DownloadError
from mitobench.paths import require_folder
from mitobench.progress import NullProgress, Progress

URL_ENV = "MITOBENCH_DATA_URL"
PARTS = ".download"
"""Folder of a data root holding partial downloads between attempts."""
CHUNK = 1 << 16


def default_source() -> dict[str, str | None]:
    """The packaged upstream source (url, sha256, licence)."""
    return packaged_yaml("mitobench.data", "sources.yaml")["upstream"]


def fetch(url: str, part: Path, sha256: str | None, progress: Progress) -> Path:
    """Stream `url` into `part`, resuming a partial file from an earlier attempt (HTTP Range);
    refuse a short or corrupt transfer. A dropped connection keeps what arrived for the next try."""
    done = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    h = hashlib.sha256()
    received = 0
    total: int | None = None
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            resumed = done > 0 and getattr(resp, "status", 200) == 206
            if resumed:
                with open(part, "rb") as old:
                    for block in iter(lambda: old.read(CHUNK), b""):
                        h.update(block)
            else:
                done = 0
            length = resp.headers.get("Content-Length")
            total = done + int(length) if length else None
            progress.start(f"downloading {url.rsplit('/', 1)[-1]}", total)
            progress.advance(done)
            with open(part, "ab" if resumed else "wb") as out:
                for chunk in iter(lambda: resp.read(CHUNK), b""):
                    out.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    progress.advance(len(chunk))
            progress.finish()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DownloadError(
            f"download of {url} failed after {done + received} bytes ({exc})",
            "check the network (or HTTPS proxy) and run the command again: it resumes; or download "
            "the archive elsewhere and run `mitobench data download --url file:///path/to/archive` "
            "(or set MITOBENCH_DATA_URL), or point --data-root at a folder that holds the data",
        ) from None
    if total is not None and done + received != total:
        raise DownloadError(
            f"download of {url} is incomplete: {done + received} of {total} bytes",
            "the connection dropped; run the command again: it resumes where it stopped",
        )
    if sha256 and h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url} has sha256 {h.hexdigest()}, expected {sha256}",
            "the file is corrupt or was changed upstream; retry, or pass --url to a known copy",
        )
    return part


def extract(archive: Path, into: Path) -> None:
    """Unpack a zip or tar archive, refusing a truncated one or paths that escape `into`."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise zipfile.BadZipFile(f"corrupt member {bad}")
                for name in zf.namelist():
                    _check_member(name, into)
                zf.extractall(into)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                tf.extractall(into, filter="data")
        else:
            raise DownloadError(
                f"{archive}: not a zip or tar archive",
                "the server returned something else (an error page?); check --url",
            )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        raise DownloadError(f"{archive}: archive is broken ({exc})", "run the command again") from None


def _check_member(name: str, into: Path) -> None:
    dest = (into / name).resolve()
    if not dest.is_relative_to(into.resolve()):
        raise DownloadError(f"archive member {name!r} escapes the target folder", "use a trusted archive")


def install(
    extracted: Path, data_root: Path, overwrite: bool = False, progress: Progress | None = None
) -> list[str]:
    """Verify each dataset found in `extracted`, then swap it into `data_root` atomically.

    Everything is checked before anything is touched: a dataset that fails its shipped manifest
    (or, without one, its counts and decoding) stops the install with the old copy intact. An
    existing copy is kept when it verifies and `overwrite` is off; a broken one is replaced.
    """
    progress = progress or NullProgress()
    staging = extracted.parent / "staging"
    staged = _stage(extracted, staging)
    if not staged:
        return []
    for name in staged:
        _require_verified(staging, name, "the downloaded copy", progress)
    installed = []
    for name in staged:
        spec = DATASETS[name]
        exists = (data_root / spec.folder).exists()
        if exists and not overwrite and verify_dataset(data_root, name, progress).ok:
            installed.append(name)  # the copy in place is the release: keep it
            continue
        _swap_in(staging, data_root, [*spec.files, spec.folder])
        installed.append(name)
    return installed


def _stage(extracted: Path, staging: Path) -> list[str]:
    """Lay the datasets found anywhere in the archive out like a data root under `staging`."""
    names = []
    for name, spec in DATASETS.items():
        folder = _find(extracted, spec.folder, want_dir=True)
        if folder is None:
            continue
        staging.mkdir(parents=True, exist_ok=True)
        for fname in spec.files:
            src = _find(extracted, fname, want_dir=False)
            if src is not None:
                os.replace(src, staging / fname)
        os.replace(folder, staging / spec.folder)
        names.append(name)
    return names


def _require_verified(root: Path, name: str, what: str, progress: Progress) -> None:
    result = verify_dataset(root, name, progress)
    if not result.ok:
        more = f" (and {len(result.problems) - 1} more problems)" if len(result.problems) > 1 else ""
        raise DownloadError(
            f"{DATASETS[name].title}: {what} fails verification: {result.problems[0]}{more}",
            "nothing was installed; the archive is incomplete or not the release: retry, "
            "or pass --url to a good copy",
        )


def _swap_in(staging: Path, data_root: Path, items: list[str]) -> None:
    """Replace `items` (metadata files, then the dataset folder) in `data_root` by the staged
    ones; the old ones are set aside first and put back if any step fails."""
    data_root.mkdir(parents=True, exist_ok=True)
    backup = Path(tempfile.mkdtemp(dir=data_root, prefix=".previous-"))
    moved: list[str] = []
    try:
        for item in items:
            src, dst = staging / item, data_root / item
            if not src.exists():
                continue
            if dst.exists():
                os.replace(dst, backup / item)
            moved.append(item)
            os.replace(src, dst)
    except OSError as exc:
        for item in moved:
            dst, old = data_root / item, backup / item
            if dst.exists() and old.exists():
                shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
            if old.exists():
                os.replace(old, dst)
        shutil.rmtree(backup, ignore_errors=True)
        raise DownloadError(
            f"installing into {data_root} failed ({exc})", "the previous copy was kept"
        ) from None
    shutil.rmtree(backup, ignore_errors=True)


def _find(root: Path, name: str, want_dir: bool) -> Path | None:
    for path in sorted(root.rglob(name), key=lambda p: len(p.parts)):
        if path.is_dir() == want_dir:
            return path
    return None


def download(
    data_root: Path,
    url: str | None = None,
    sha256: str | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> list[str]:
    """Download, extract and install the upstream datasets; returns the names now present."""
    progress = progress or NullProgress()
    require_folder(data_root, "the data root", "pass a folder: --data-root DIR")
    source = default_source()
    url = url or os.environ.get(URL_ENV) or str(source["url"])
    sha256 = sha256 or (None if url != source["url"] else source.get("sha256"))
    data_root.mkdir(parents=True, exist_ok=True)
    parts = data_root / PARTS
    parts.mkdir(exist_ok=True)
    part = parts / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}.part"
    archive = fetch(url, part, sha256, progress)
    try:
        with tempfile.TemporaryDirectory(dir=data_root, prefix=".download-") as tmp:
            extracted = Path(tmp) / "extracted"
            extract(archive, extracted)
            installed = install(extracted, data_root, overwrite, progress)
    except DownloadError:
        shutil.rmtree(parts, ignore_errors=True)  # complete but broken: the next try starts afresh
        raise
    shutil.rmtree(parts, ignore_errors=True)
    if not installed:
        raise DownloadError(
            f"{url}: the archive holds none of {', '.join(s.folder for s in DATASETS.values())}",
            "check --url: it should point at the AMi-Br_Benchmark archive",
        )
    return installed
