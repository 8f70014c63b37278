"""Encoder.prepare: the uint8 fast path resizes like PIL and normalises like the float path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mitobench.models.builder import build


def _real_patches(root: Path, n: int = 8) -> list[Path]:
    return sorted((root / "AMi-Br" / "Atypical").glob("*.png"))[:n]


def test_uint8_resize_matches_pil_bicubic(real_root: Path) -> None:
    encoder = build("tf_efficientnet_lite0", pretrained=False)
    assert encoder.spec.interpolation == "bicubic"
    paths = _real_patches(real_root)
    rgb = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])
    resized = [Image.open(p).convert("RGB").resize((224, 224), Image.BICUBIC) for p in paths]
    pil = np.stack([np.asarray(r) for r in resized])
    mean, std = torch.tensor(encoder.spec.mean), torch.tensor(encoder.spec.std)
    expected = ((torch.from_numpy(pil).float() / 255 - mean) / std).permute(0, 3, 1, 2)
    got = encoder.prepare(torch.from_numpy(rgb), 224)
    assert got.shape == (len(paths), 3, 224, 224)
    level = 1 / 255 / min(encoder.spec.std)  # one grey level after normalisation
    assert (got - expected).abs().mean() < 0.05 * level
    assert (got - expected).abs().max() <= 2.01 * level


def test_uint8_and_float_inputs_agree_without_resizing() -> None:
    encoder = build("tf_efficientnet_lite0", pretrained=False)
    images = torch.randint(0, 256, (3, 128, 128, 3), dtype=torch.uint8)
    as_float = images.permute(0, 3, 1, 2).float() / 255
    kept = as_float.clone()
    a, b = encoder.prepare(images, 128), encoder.prepare(as_float, 128)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(as_float, kept, rtol=0, atol=0)  # the caller's tensor is not modified
    mean = torch.tensor(encoder.spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(encoder.spec.std).view(1, 3, 1, 1)
    torch.testing.assert_close(a, (as_float - mean) / std)
