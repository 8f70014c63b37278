"""Download against a local HTTP server serving a fixture archive, including broken transfers."""

from __future__ import annotations

import dataclasses
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from mitobench.data.download import download
from mitobench.data.registry import load, present
from mitobench.errors import DownloadError
from tests.conftest import make_amibr, make_atnorm


class _Handler(http.server.BaseHTTPRequestHandler):
    payloads: ClassVar[dict[str, bytes]] = {}
    ranges: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        body = self.payloads.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.ranges.append(self.headers.get("Range"))
        if self.path == "/flaky.zip":  # drops half way the first time; honours Range after that
            start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
            self.send_response(206 if start else 200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:] if start else body[: len(body) // 2])
            return
        self.send_response(200)
        if self.path.startswith("/short"):  # announce more than is sent: a dropped connection
            self.send_header("Content-Length", str(len(body) * 2))
        else:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def synthetic_release(src: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the small synthetic datasets under `src` *the release* the installer verifies against:
    manifests of their files (AMi-Br, AtNorM-MD) and their counts (AtNorM-Br, which has none)."""
    from mitobench.data import manifest
    from mitobench.data.registry import DATASETS

    manifests = {
        name: {
            p.relative_to(src).as_posix(): manifest.sha256_file(p) for p in manifest.dataset_files(src, name)
        }
        for name in ("amibr", "atnorm-md")
    }
    monkeypatch.setattr(manifest, "shipped_manifest", manifests.get)
    monkeypatch.setitem(
        DATASETS, "atnorm-br", dataclasses.replace(DATASETS["atnorm-br"], counts={"test": (3, 5)})
    )


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A zip laid out like the upstream repository archive, whose datasets are the release."""
    src = tmp_path / "src" / "AMi-Br_Benchmark-main"
    make_amibr(src)
    make_atnorm(src, "AtNorM-Br")
    make_atnorm(src, "AtNorM-MD")
    synthetic_release(src, monkeypatch)
    zip_path = shutil.make_archive(str(tmp_path / "upstream"), "zip", tmp_path / "src")
    return Path(zip_path).read_bytes()


@pytest.fixture
def server(archive: bytes) -> Iterator[str]:
    _Handler.payloads = {
        "/upstream.zip": archive,
        "/short.zip": archive[: len(archive) // 2],
        "/broken.zip": archive[: len(archive) // 2],
        "/page.html": b"<html>not found</html>",
        "/flaky.zip": archive,
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_installs_every_dataset(server: str, tmp_path: Path, cli) -> None:
    root = tmp_path / "root"
    code, _, err = cli("data", "download", "--data-root", root, "--url", f"{server}/upstream.zip")
    assert code == 0, err
    assert sorted(present(root)) == ["amibr", "atnorm-br", "atnorm-md"]
    assert load("amibr/train", root).summary()["n"] > 0
    assert not list(root.glob(".download-*")), "temporary files must be cleaned up"


def test_file_url_works(archive: bytes, tmp_path: Path) -> None:
    local = tmp_path / "a.zip"
    local.write_bytes(archive)
    assert "atnorm-br" in download(tmp_path / "root", url=local.as_uri())


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/short.zip", "incomplete"),
        ("/broken.zip", "broken"),
        ("/page.html", "not a zip"),
        ("/missing.zip", "failed"),
    ],
)
def test_broken_downloads_leave_nothing_behind(server: str, tmp_path: Path, path: str, message: str) -> None:
    root = tmp_path / "root"
    with pytest.raises(DownloadError, match=message):
        download(root, url=f"{server}{path}")
    assert present(root) == []
    assert [p.name for p in root.iterdir()] in ([], [".download"])  # at most the partial download


def test_a_dropped_download_resumes_where_it_stopped(server: str, tmp_path: Path) -> None:
    root = tmp_path / "root"
    _Handler.ranges = []
    with pytest.raises(DownloadError, match="incomplete"):
        download(root, url=f"{server}/flaky.zip")
    (part,) = (root / ".download").iterdir()
    kept = part.stat().st_size
    assert kept > 0
    installed = download(root, url=f"{server}/flaky.zip")
    assert _Handler.ranges == [None, f"bytes={kept}-"]  # the second request asked for the rest only
    assert sorted(installed) == ["amibr", "atnorm-br", "atnorm-md"] and not (root / ".download").exists()


def test_checksum_mismatch_is_refused(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="sha256"):
        download(tmp_path / "r", url=f"{server}/upstream.zip", sha256="0" * 64)


def test_cli_reports_failed_download(server: str, tmp_path: Path, cli) -> None:
    code, _, err = cli("data", "download", "--data-root", tmp_path, "--url", f"{server}/short.zip")
    assert code == 2 and "incomplete" in err and "Traceback" not in err
