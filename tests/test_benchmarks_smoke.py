"""The performance benchmark's quick mode runs end to end (numbers are not asserted: timings are noisy)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_perf_quick_mode_writes_its_table(real_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "perf.json"
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "perf.py"),
            "--quick",
            "--data-root",
            str(real_root),
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    table = json.loads(out.read_text())
    assert [r["measure"][:3] for r in table["rows"]] == ["(a)", "(b)", "(b)", "(c)", "(c)"]
    assert all(r["reference"] > 0 and r["ours"] > 0 for r in table["rows"])
    assert "| measure | reference | ours | ratio | target |" in run.stdout
    assert set(table["peak_rss_mb"]) >= {"probe/reference", "probe/ours", "train/bare", "infer/bare"}
