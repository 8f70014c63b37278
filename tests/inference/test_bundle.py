"""Bundles load strictly: the tensors must fit the declared model exactly, the settings must be
there, and the checksum written by `export` must match."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from mitobench.errors import ConfigError
from mitobench.inference.bundle import checksum, from_bundle


@pytest.fixture(scope="module")
def bundle(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mitobench.inference.bundle import export_bundle
    from mitobench.inference.predictor import from_run

    return export_bundle(from_run(trained_run), tmp_path_factory.mktemp("bundle") / "b.safetensors")


def _read(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["mitobench"])
        return {k: fh.get_tensor(k) for k in fh.keys()}, meta  # noqa: SIM118


def _rewrite(src: Path, dst: Path, edit, reseal: bool = True) -> Path:
    """A copy of the bundle with `edit(tensors, meta)` applied; `reseal` recomputes its checksum
    (a bundle a buggy exporter wrote), else the old checksum stays (a damaged or edited file)."""
    tensors, meta = _read(src)
    edit(tensors, meta)
    if reseal:
        meta["sha256"] = checksum(tensors, meta)
    save_file(tensors, str(dst), metadata={"mitobench": json.dumps(meta)})
    return dst


def test_an_exported_bundle_carries_a_checksum_and_loads(bundle: Path) -> None:
    tensors, meta = _read(bundle)
    assert meta["sha256"] == checksum(tensors, meta) and len(meta["sha256"]) == 64
    assert sorted(from_bundle(bundle).fold_states) == [0, 1]


def _first(tensors: dict, prefix: str = "fold0.") -> str:
    return next(k for k in sorted(tensors) if k.startswith(prefix) and k.endswith("weight"))


@pytest.mark.parametrize(
    ("edit", "reseal", "needle"),
    [
        (lambda t, m: t.pop(_first(t)), True, "fold 0 lacks"),
        (
            lambda t, m: t.update({"fold1.extra.weight": torch.zeros(3)}),
            True,
            "has tensors the model does not",
        ),
        (lambda t, m: t.update({_first(t): torch.zeros(2, 2)}), True, "has shape [2, 2]"),
        (lambda t, m: t[_first(t)].mul_(2), False, "do not match its checksum"),
        (lambda t, m: m.update({"threshold": 0.01}), False, "do not match its checksum"),
        (lambda t, m: m.pop("train_config"), True, "lacks its settings (train_config)"),
        (lambda t, m: [t.pop(k) for k in list(t) if k.startswith("fold")], True, "holds no fold weights"),
    ],
)
def test_a_bundle_that_does_not_fit_its_model_is_refused(
    bundle: Path, tmp_path: Path, edit, reseal, needle
) -> None:
    bad = _rewrite(bundle, tmp_path / "bad.safetensors", edit, reseal)
    with pytest.raises(ConfigError) as err:
        from_bundle(bad)
    assert needle in str(err.value), err.value


def test_the_patch_geometry_travels_from_the_run_to_the_bundle_and_predict(
    trained_run: Path, bundle: Path, tmp_path: Path, real_patches, cli
) -> None:
    """A run records the side and µm/px of its training patches (AMi-Br's declared 128 px at
    0.25); the bundle carries it; predict resizes new patches to the side the model saw."""
    import shutil

    import pandas as pd

    from mitobench.data.geometry import PatchGeometry
    from mitobench.inference.predictor import from_run

    assert json.loads((trained_run / "run.json").read_text())["patch"] == {"size": 128, "mpp": 0.25}
    assert from_bundle(bundle).patch == PatchGeometry(128, 0.25)
    other = _rewrite(
        bundle, tmp_path / "p64.safetensors", lambda t, m: m.update(patch={"size": 64, "mpp": 0.5})
    )
    assert from_bundle(other).patch == PatchGeometry(64, 0.5)
    # predict with a 64-px model on 128-px patches == predict on the same patches shrunk to 64 first
    folder, arrays = real_patches
    small = tmp_path / "small"
    small.mkdir()
    from PIL import Image

    big = tmp_path / "big"
    big.mkdir()
    for i, a in enumerate(arrays[:6]):
        Image.fromarray(a).resize((64, 64), Image.Resampling.BICUBIC).save(small / f"{i:02d}.png")
        shutil.copy(folder / f"{i:02d}.png", big / f"{i:02d}.png")
    for src, out in ((big, "a.csv"), (small, "b.csv")):
        code, _, err = cli("predict", other, src, "--out", tmp_path / out)
        assert code == 0, err
    a, b = (pd.read_csv(tmp_path / n).sort_values("id")["probability"].to_numpy() for n in ("a.csv", "b.csv"))
    assert abs(a - b).max() < 1e-5  # the same resize (bicubic), the same pixels
    assert from_run(trained_run).patch == PatchGeometry(128, 0.25)
