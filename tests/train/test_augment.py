"""Batched augmentation steps: the paper's recipes equal the scripts' transforms, and each step
does what the torchvision transform of the same name does to a PIL image (as the scripts ran)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TFv1

from mitobench.recipes.config import train_config
from mitobench.train.augment import (
    ColorJitter,
    Dihedral,
    HedJitter,
    HFlip,
    RandomResizedCrop,
    Resize,
    Rotate,
    augment,
    colour_jitter,
    crop_resize,
    dihedral_transform,
    hed_jitter,
    resized_crop_boxes,
    rotate,
)
from tests.reference_scripts import SCRIPT_OF, compose, source

LEVEL = 1 / 255


def _steps_from_torchvision(pipeline: transforms.Compose) -> list[object]:
    """Our reading of a script's train transform, built from the torchvision objects themselves."""
    out: list[object] = []
    for t in pipeline.transforms:
        if isinstance(t, transforms.RandomResizedCrop):
            out.append(
                RandomResizedCrop(
                    size=t.size[0], scale=t.scale, ratio=t.ratio, interpolation=t.interpolation.value
                )
            )
        elif isinstance(t, transforms.Resize):
            size = t.size if isinstance(t.size, int) else t.size[0]
            out.append(Resize(size=size, interpolation=t.interpolation.value))
        elif isinstance(t, transforms.RandomHorizontalFlip):
            out.append(HFlip(p=t.p))
        elif isinstance(t, transforms.RandomRotation):
            assert t.fill in (0, None, [0.0, 0.0, 0.0]) and not t.expand and t.center is None
            out.append(Rotate(degrees=t.degrees[1], interpolation=t.interpolation.value, fill="zero"))
        elif isinstance(t, transforms.ColorJitter):

            def spread(v: tuple[float, float] | None, centre: float) -> float:
                return 0.0 if v is None else round(v[1] - centre, 6)

            out.append(
                ColorJitter(
                    brightness=spread(t.brightness, 1),
                    contrast=spread(t.contrast, 1),
                    saturation=spread(t.saturation, 1),
                    hue=spread(t.hue, 0),
                )
            )
        else:
            assert isinstance(t, transforms.ToTensor | transforms.Normalize), f"unmapped {t}"
    return out


TRAINED = sorted(k for k in SCRIPT_OF if k[1] != "probe")


@pytest.mark.parametrize(("model", "mode"), TRAINED)
def test_paper_augmentation_is_the_scripts_train_transform(model: str, mode: str) -> None:
    cfg = train_config(mode, "paper", model=model)  # type: ignore[arg-type]
    ours = [s.model_copy(update={"size": cfg.input_size}) if hasattr(s, "size") else s for s in cfg.augment]
    script = compose(model, mode, "train_transform")
    if script is None:  # UNI2-h's LoRA script trains on its eval transform: no augmentation
        assert "train_transform = create_transform(**resolve_data_config(" in source(model, mode)
        assert ours == []
        return
    assert ours == _steps_from_torchvision(script)
    assert not any(isinstance(t, transforms.RandomVerticalFlip) for t in script.transforms)


def _patches(root: Path, n: int = 6) -> list[Image.Image]:
    paths = sorted((root / "AMi-Br" / "Atypical").glob("*.png"))[:n]
    return [Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR) for p in paths]


def _batch(images: list[Image.Image]) -> torch.Tensor:
    return torch.stack([TFv1.to_tensor(im) for im in images])


def test_rotation_is_pils_nearest_rotation_with_black_fill(real_root: Path) -> None:
    images = _patches(real_root)
    angles = torch.tensor([-10.0, -3.3, 0.0, 4.2, 9.9, 15.0], dtype=torch.float64)
    ours = rotate(_batch(images), angles, Rotate(degrees=15))
    theirs = _batch(
        [
            TFv1.rotate(im, float(a), InterpolationMode.NEAREST, fill=0)
            for im, a in zip(images, angles, strict=True)
        ]
    )
    same = (ours - theirs).abs().amax(dim=1) < 0.5 * LEVEL
    assert same.float().mean() > 0.99  # nearest: a pixel on a rounding boundary may take its neighbour
    black = theirs.amax(dim=1) == 0
    assert ((ours.amax(dim=1) == 0) == black).float().mean() > 0.99  # the same black corners


def test_resized_crop_is_torchvisions_resized_crop(real_root: Path) -> None:
    images = _patches(real_root)
    boxes = torch.tensor([[0, 0, 224, 224], [10, 20, 200, 190], [3, 50, 120, 160], [100, 0, 100, 224],
                          [0, 100, 80, 60], [30, 30, 150, 150]])  # fmt: skip
    ours = crop_resize(_batch(images), boxes, 224, "bilinear")
    theirs = _batch(
        [
            TFv1.resized_crop(im, *map(int, b), [224, 224], InterpolationMode.BILINEAR, antialias=True)
            for im, b in zip(images, boxes, strict=True)
        ]
    )
    diff = (ours - theirs).abs()
    assert diff.mean() < 0.3 * LEVEL and diff.max() <= 1.01 * LEVEL  # PIL rounds to whole levels


@pytest.mark.parametrize(
    ("name", "factor", "mean_levels", "max_levels"),
    [("brightness", 1.17, 0.5, 1.01), ("contrast", 0.83, 0.6, 1.2), ("saturation", 1.2, 0.6, 1.2),
     ("hue", 0.07, 1.0, 7.0)],
)  # fmt: skip
def test_each_colour_op_is_torchvisions_on_pil(
    real_root: Path, name: str, factor: float, mean_levels: float, max_levels: float
) -> None:
    images = _patches(real_root)
    step = ColorJitter(**{name: 0.5 if name != "hue" else 0.1})
    j = ("brightness", "contrast", "saturation", "hue").index(name)
    order = torch.tensor([[j] + [k for k in range(4) if k != j]] * len(images))
    factors = torch.ones(len(images), 4, dtype=torch.float64)
    factors[:, 3] = 0.0
    factors[:, j] = factor
    ours = colour_jitter(_batch(images), order, factors, step)
    fn = getattr(TFv1, f"adjust_{name}")
    theirs = _batch([fn(im, factor) for im in images])
    diff = (ours - theirs).abs()
    # PIL rounds each op down to whole grey levels (and quantises hue to 256 steps); ours is float
    assert diff.mean() < mean_levels * LEVEL
    assert diff.max() <= max_levels * LEVEL


def test_resize_step_is_pils_resize(real_root: Path) -> None:
    paths = sorted((real_root / "AMi-Br" / "Normal").glob("*.png"))[:4]
    small = [Image.open(p).convert("RGB") for p in paths]
    ours = augment(_batch(small), torch.Generator(), [Resize(size=224, interpolation="bilinear")], 224)
    theirs = _batch([im.resize((224, 224), Image.BILINEAR) for im in small])
    assert (ours - theirs).abs().max() <= 1.01 * LEVEL


def test_resized_crop_boxes_follow_the_requested_area_and_ratio() -> None:
    step = RandomResizedCrop(size=224, scale=(0.8, 1.0))
    boxes = resized_crop_boxes(2000, 224, 224, step, torch.Generator().manual_seed(0))
    top, left, h, w = boxes.T.double()
    area = h * w / 224**2
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 224).all() and (left + w <= 224).all()
    assert area.min() > 0.78 and area.max() <= 1.0
    ratio = w / h
    assert ratio.min() >= 3 / 4 - 0.02 and ratio.max() <= 4 / 3 + 0.02
    assert 0.85 < area.mean() < 0.93  # uniform in [0.8, 1], less the rejected draws near 1


def test_colour_jitter_draws_a_random_order_per_image() -> None:
    from mitobench.train.augment import colour_params

    order, factors = colour_params(
        400, ColorJitter(brightness=0.2, hue=0.1), torch.Generator().manual_seed(3)
    )
    assert len({tuple(o) for o in order.tolist()}) == 24  # every permutation of the four ops occurs
    assert (factors[:, 1:3] == 1).all()  # contrast and saturation unused
    assert factors[:, 0].min() >= 0.8 and factors[:, 0].max() <= 1.2
    assert factors[:, 3].abs().max() <= 0.1


def test_dihedral_transforms_are_the_eight_symmetries() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    outs = {tuple(dihedral_transform(x, c).flatten().tolist()) for c in range(8)}
    assert len(outs) == 8
    assert torch.equal(dihedral_transform(x, 0), x)


def test_hed_jitter_without_strength_is_the_identity() -> None:
    x = torch.rand(3, 3, 16, 16).clamp(0.05, 1)
    y = hed_jitter(x, torch.Generator().manual_seed(0), 0.0)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-4)


def test_same_seed_same_augmentation_whatever_the_global_rng() -> None:
    steps = [
        Dihedral(),
        Rotate(degrees=15, interpolation="bilinear", fill="reflect", scale=(0.9, 1.1)),
        HedJitter(sigma=0.05),
        ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1),
        RandomResizedCrop(size=40, scale=(0.5, 1.0)),
    ]
    x = torch.rand(8, 3, 32, 32)
    torch.manual_seed(0)
    a = augment(x, torch.Generator().manual_seed(1), steps, 40)
    torch.manual_seed(123)  # the global generator plays no part
    b = augment(x, torch.Generator().manual_seed(1), steps, 40)
    c = augment(x, torch.Generator().manual_seed(2), steps, 40)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 and a.shape == (8, 3, 40, 40)


def test_rotation_by_ninety_degrees_is_exact() -> None:
    x = torch.rand(2, 3, 8, 8)
    y = rotate(x, torch.tensor([90.0, -90.0], dtype=torch.float64), Rotate(degrees=90))
    torch.testing.assert_close(y[0], torch.rot90(x[0], 1, dims=(-2, -1)))
    torch.testing.assert_close(y[1], torch.rot90(x[1], -1, dims=(-2, -1)))
