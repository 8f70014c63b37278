"""`data verify` checks the release's sha256 manifest, and AtNorM-Br by counts and decoding."""

from __future__ import annotations

import shutil
from pathlib import Path

from mitobench.data.manifest import shipped_manifest, verify_dataset
from tests.conftest import make_atnorm


def test_shipped_manifests_cover_the_release() -> None:
    amibr = shipped_manifest("amibr")
    md = shipped_manifest("atnorm-md")
    assert amibr is not None and md is not None
    assert len(amibr) == 3720 + 2 and "AMI-BR.csv" in amibr
    assert len(md) == 2107 + 1
    assert shipped_manifest("atnorm-br") is None


def test_real_data_verifies(real_root: Path) -> None:
    for name in ("amibr", "atnorm-md"):
        result = verify_dataset(real_root, name)
        assert result.ok, result.problems[:3]
        assert result.checked > 2000


def test_modified_and_missing_files_are_reported(real_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    shutil.copytree(real_root / "AtNorM-MD", root / "AtNorM-MD")
    shutil.copy(real_root / "AtNorM-MD_expert_votes.csv", root)
    (root / "AtNorM-MD" / "Normal" / "1.png").write_bytes(b"changed")
    (root / "AtNorM-MD" / "Atypical" / "3.png").unlink()
    (root / "AtNorM-MD" / "Normal" / "extra.png").write_bytes(b"x")
    problems = "\n".join(verify_dataset(root, "atnorm-md").problems)
    assert "1.png: content differs" in problems
    assert "3.png: missing" in problems
    assert "extra.png: not part of the release" in problems


def test_atnorm_br_is_checked_by_counts(tmp_path: Path) -> None:
    make_atnorm(tmp_path, "AtNorM-Br", n_atyp=128, n_norm=617)
    result = verify_dataset(tmp_path, "atnorm-br")
    assert result.method == "counts+decode" and result.checked == 745
    assert result.problems == [f"{tmp_path / 'AtNorM-Br' / 'Normal'}: 617 images, expected 618"]
