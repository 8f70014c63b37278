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
from mitobench.data.registry import DATASETS
from mitobench.errors import DownloadError
from mitobench.progress import NullProgress, Progress

URL_ENV = "MITOBENCH_DATA_URL"
CHUNK = 1 << 16


def default_source() -> dict[str, str | None]:
    """The packaged upstream source (url, sha256, licence)."""
    return packaged_yaml("mitobench.data", "sources.yaml")["upstream"]


def fetch(url: str, target: Path, sha256: str | None, progress: Progress) -> Path:
    """Stream `url` to `target` via a `.part` file; refuse a short or corrupt transfer."""
    part = target.with_name(target.name + ".part")
    h = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(part, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length else None
            progress.start(f"downloading {url.rsplit('/', 1)[-1]}", total)
            for chunk in iter(lambda: resp.read(CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
                received += len(chunk)
                progress.advance(len(chunk))
            progress.finish()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url} failed after {received} bytes ({exc})",
            "check the network (or HTTPS proxy) and retry; or download the archive yourself "
            "and pass it with --url file:///path/to/archive",
        ) from None
    if total is not None and received != total:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url} is incomplete: {received} of {total} bytes",
            "the connection dropped; run the command again",
        )
    if sha256 and h.hexdigest() != sha256:
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"download of {url} has sha256 {h.hexdigest()}, expected {sha256}",
            "the file is corrupt or was changed upstream; retry, or pass --url to a known copy",
        )
    os.replace(part, target)
    return target


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


def install(extracted: Path, data_root: Path, overwrite: bool = False) -> list[str]:
    """Move each dataset folder and metadata file found in `extracted` into `data_root`."""
    installed = []
    for name, spec in DATASETS.items():
        folder = _find(extracted, spec.folder, want_dir=True)
        if folder is None:
            continue
        files = {f: _find(extracted, f, want_dir=False) for f in spec.files}
        dest = data_root / spec.folder
        if dest.exists():
            if not overwrite:
                installed.append(name)
                continue
            shutil.rmtree(dest)
        data_root.mkdir(parents=True, exist_ok=True)
        for fname, src in files.items():
            if src is not None:
                shutil.move(str(src), data_root / fname)
        shutil.move(str(folder), dest)  # the folder last: its presence means complete
        installed.append(name)
    return installed


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
    source = default_source()
    url = url or os.environ.get(URL_ENV) or str(source["url"])
    sha256 = sha256 or (None if url != source["url"] else source.get("sha256"))
    data_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_root, prefix=".download-") as tmp:
        tmp_path = Path(tmp)
        archive = fetch(url, tmp_path / "archive", sha256, progress)
        extracted = tmp_path / "extracted"
        extract(archive, extracted)
        installed = install(extracted, data_root, overwrite)
    if not installed:
        raise DownloadError(
            f"{url}: the archive holds none of {', '.join(s.folder for s in DATASETS.values())}",
            "check --url: it should point at the AMi-Br_Benchmark archive",
        )
    return installed
