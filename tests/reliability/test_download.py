"""Downloads never lose data: verified in a staging folder, swapped in atomically."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from mitobench.data.download import download
from mitobench.data.manifest import verify_dataset
from mitobench.data.registry import present
from mitobench.errors import DownloadError
from tests.conftest import make_amibr, make_atnorm
from tests.data.test_download import synthetic_release


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = tmp_path / "src" / "AMi-Br_Benchmark-main"
    make_amibr(src)
    make_atnorm(src, "AtNorM-Br")
    make_atnorm(src, "AtNorM-MD")
    synthetic_release(src, monkeypatch)
    return src


def _tar(src: Path, target: Path, cut_at_member: int | None = None) -> str:
    """A tar of the release; `cut_at_member` truncates it exactly where that member's header starts."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(src, arcname=src.name)
    data = buf.getvalue()
    if cut_at_member is not None:
        with tarfile.open(fileobj=io.BytesIO(data)) as tf:
            data = data[: tf.getmembers()[cut_at_member].offset]
    target.write_bytes(data)
    return target.as_uri()


def test_a_tar_cut_at_a_file_boundary_is_refused_and_nothing_installed(
    release: Path, tmp_path: Path, cli
) -> None:
    url = _tar(release, tmp_path / "cut.tar", cut_at_member=20)
    with tarfile.open(tmp_path / "cut.tar") as tf:
        assert len(tf.getmembers()) == 20  # reads "fine": the truncation is invisible to tarfile
    root = tmp_path / "root"
    code, _, err = cli("data", "download", "--data-root", root, "--url", url)
    assert code == 2 and "fails verification" in err and "Traceback" not in err
    assert present(root) == []


def test_a_broken_copy_in_place_is_replaced_by_a_verified_one(release: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    download(root, url=_tar(release, tmp_path / "good.tar"))
    victim = next((root / "AMi-Br" / "Normal").iterdir())
    victim.unlink()  # an earlier, interrupted copy
    assert not verify_dataset(root, "amibr").ok
    download(root, url=_tar(release, tmp_path / "good.tar"))
    assert verify_dataset(root, "amibr").ok and victim.is_file()


def test_overwrite_keeps_the_good_copy_when_the_new_one_is_bad(release: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    download(root, url=_tar(release, tmp_path / "good.tar"))
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(DownloadError, match="fails verification"):
        download(root, url=_tar(release, tmp_path / "cut.tar", cut_at_member=30), overwrite=True)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before
    assert all(verify_dataset(root, n).ok for n in ("amibr", "atnorm-br", "atnorm-md"))


def test_a_good_copy_in_place_is_kept_without_overwrite(release: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    download(root, url=_tar(release, tmp_path / "good.tar"))
    marker = root / "AMi-Br"
    inode = os.stat(marker).st_ino
    download(root, url=_tar(release, tmp_path / "good.tar"))
    assert os.stat(marker).st_ino == inode  # not replaced
    download(root, url=_tar(release, tmp_path / "good.tar"), overwrite=True)
    assert os.stat(marker).st_ino != inode and verify_dataset(root, "amibr").ok


def test_the_first_command_fetches_the_data_when_there_is_none(
    release: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli
) -> None:
    """`mitobench run quick` without --data-root on a machine with no data: download, verify, run."""
    from mitobench.benchmark import runner

    home = tmp_path / "user-data"
    monkeypatch.setenv("MITOBENCH_DATA", str(home))  # the per-user data folder, here
    monkeypatch.setenv("MITOBENCH_DATA_URL", _tar(release, tmp_path / "release.tar"))
    seen: list[Path] = []

    def fake_grid(grid, results_dir, data_root, *args, **kwargs):  # the training itself is tested elsewhere
        seen.append(data_root)
        return runner.GridResult()

    monkeypatch.setattr(runner, "run_grid", fake_grid)
    code, _, err = cli("run", "quick", "--results", tmp_path / "results", "--no-report")
    assert code == 0, err
    assert "fetching and verifying it first" in err and seen == [home]
    assert all(verify_dataset(home, n).ok for n in ("amibr", "atnorm-br", "atnorm-md"))
    code, _, err = cli("run", "quick", "--results", tmp_path / "results", "--no-report")
    assert code == 0 and "fetching" not in err  # present now: not fetched again
