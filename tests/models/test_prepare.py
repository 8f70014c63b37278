"""Encoder.prepare: both resize paths (uint8 on CPU, float elsewhere) give the reference scripts'
evaluation input, run here on the CPU on the same real patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from timm.data import create_transform, resolve_data_config
from torch import nn
from torchvision import transforms

from mitobench.models.encoder import Encoder, default_path
from mitobench.models.registry import get
from mitobench.models.spec import InputTransform, Pooling
from mitobench.recipes.config import train_config
from tests.reference_scripts import HUB_CFG, SCRIPT_OF, compose


def _patches(root: Path, n: int = 8) -> list[Image.Image]:
    paths = sorted((root / "AMi-Br" / "Atypical").glob("*.png"))[: n // 2]
    paths += sorted((root / "AMi-Br" / "Normal").glob("*.png"))[: n // 2]
    return [Image.open(p).convert("RGB") for p in paths]


def _uint8(images: list[Image.Image]) -> torch.Tensor:
    return torch.from_numpy(np.stack([np.asarray(im) for im in images]))


def _encoder(name: str, transform: InputTransform, pooling: Pooling | None = None) -> Encoder:
    spec = get(name)
    return Encoder(spec, nn.Identity(), "test").configure(transform, pooling or spec.pooling)


def _levels(a: torch.Tensor, b: torch.Tensor, std: tuple[float, float, float]) -> torch.Tensor:
    """|a - b| in grey levels (0..255) of the image before normalisation."""
    return (a - b).abs() * torch.tensor(std).view(1, 3, 1, 1) * 255


@pytest.mark.parametrize(
    "transform",
    [
        InputTransform(224, 224, "bilinear", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        InputTransform(224, 224, "bicubic", (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        InputTransform(224, 256, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        InputTransform(128, 128, "bicubic", (0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517)),
    ],
)
def test_uint8_and_float_paths_agree_within_a_grey_level(real_root: Path, transform: InputTransform) -> None:
    encoder = _encoder("uni", transform)
    images = _uint8(_patches(real_root))
    a = encoder.prepare(images, path="uint8")
    b = encoder.prepare(images, path="float")
    assert a.shape == b.shape == (len(images), 3, transform.size, transform.size)
    assert _levels(a, b, transform.std).max() <= 1.0 + 1e-3
    # not blank: back in [0, 1], the image keeps the patch's brightness and contrast (the old float
    # path saturated 99 % of pixels to white)
    pixels = b * torch.tensor(transform.std).view(1, 3, 1, 1) + torch.tensor(transform.mean).view(1, 3, 1, 1)
    assert 0.3 < pixels.mean() < 0.9 and pixels.std() > 0.08
    assert (pixels > 0.999).float().mean() < 0.01


def test_the_path_follows_the_device() -> None:
    assert default_path(torch.device("cpu")) == "uint8"
    assert default_path(torch.device("cuda")) == "float"
    assert default_path(torch.device("mps")) == "float"


def _script_eval(model: str, mode: str) -> transforms.Compose | None:
    """The evaluation transform the script applies to a PIL patch (probe: embedding transform)."""
    if model in HUB_CFG and (mode == "probe" or model == "uni2-h"):
        cfg = {**HUB_CFG[model], "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}
        return create_transform(**resolve_data_config(pretrained_cfg=cfg))
    if model.startswith("h-optimus") and mode == "probe":
        # hoptimus{0,1}.py: Image.resize((224, 224)) (PIL's default filter), then ToTensor + Normalize
        tail = compose(model, mode, "hoptimus_transform")
        return transforms.Compose([transforms.Lambda(lambda im: im.resize((224, 224))), *tail.transforms])
    if model == "prov-gigapath" and mode == "probe":
        return compose(model, mode, "gigapath_transform")
    return compose(model, mode, "val_transform")


@pytest.mark.parametrize(("model", "mode"), sorted(SCRIPT_OF))
def test_paper_eval_input_is_the_scripts(real_root: Path, model: str, mode: str) -> None:
    script = _script_eval(model, mode)
    assert script is not None
    cfg = train_config(mode, "paper", model=model)  # type: ignore[arg-type]
    transform = cfg.transform_for(get(model))
    normalise = next(t for t in script.transforms if isinstance(t, transforms.Normalize))
    assert transform.mean == pytest.approx([float(v) for v in normalise.mean])
    assert transform.std == pytest.approx([float(v) for v in normalise.std])
    patches = _patches(real_root)
    expected = torch.stack([script(im) for im in patches])
    encoder = _encoder(model, transform)
    # the float path (GPUs) is within one grey level of PIL; torch's fixed-point uint8 kernel (CPU)
    # rounds a few pixels in ten thousand the other way, by at most two levels
    for path, most in (("float", 1.0), ("uint8", 2.0)):
        got = encoder.prepare(_uint8(patches), path=path)  # type: ignore[arg-type]
        assert got.shape == expected.shape
        diff = _levels(got, expected, transform.std)
        assert diff.max() <= most + 1e-3, f"{path}: {diff.max():.2f} grey levels"
        assert (diff > 1 + 1e-3).float().mean() < 1e-3
        assert diff.mean() < 0.25
