"""Fixtures of the inference tests: a small trained run shipped into a temporary folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from mitobench.inference.shipped import DEFAULT_MODEL, ship_run


@pytest.fixture(scope="session")
def ship_folder(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test run as a shipped model's three files (shipping exports ONNX: about 17 s, so once)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    folder = tmp_path_factory.mktemp("shipped")
    made = {
        "recipe": "a test run",
        "data": {"dataset": "AMi-Br (training split)", "files": 3, "sha256": "ab" * 32},
        "stages": [{"machine": "a test CPU"}],
        "validation": {"folds": [0, 1], "auroc": [0.9123, 0.9001], "threshold": 0.41, "what": "test folds"},
        "teacher": {"run": "results/x/runs/teachers", "sha256": "cd" * 32},
    }
    ship_run(trained_run, DEFAULT_MODEL, made, folder)
    return folder
