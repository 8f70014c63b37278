"""Training augmentation as data: an ordered list of steps applied to whole batches on their device.

Each step is a small typed object (`{op: rotate, degrees: 10}` in YAML), so a recipe reads like
the `transforms.Compose([...])` of the reference scripts and keeps its order. Every random
parameter is drawn from one CPU `torch.Generator` (the same draws whatever the device, and a
resumed run replays them exactly); the pixels are transformed on the batch's own device, so on
a GPU the CPU never becomes the bottleneck. Each step follows the torchvision transform of the
same name (tested against torchvision on PIL images, as the scripts ran them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from mitobench.recipes.steps import (
    ColorJitter,
    Dihedral,
    HedJitter,
    HFlip,
    RandomResizedCrop,
    Resize,
    Rotate,
    Step,
    VFlip,
    _Step,
)

# Ruifrok & Johnston stain vectors (as in scikit-image's rgb_from_hed).
_RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float32
)
_HED_FROM_RGB = torch.linalg.inv(_RGB_FROM_HED)
_LOG_ADJUST = math.log(1e-6)


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g, dtype=torch.float64) * (high - low) + low


def dihedral_transform(x: torch.Tensor, code: int) -> torch.Tensor:
    """The `code`-th (0..7) dihedral transform: rotate by 90°·(code % 4), then flip if code ≥ 4."""
    y = torch.rot90(x, code % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if code >= 4 else y


def _dihedral(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    k = torch.randint(0, 8, (x.shape[0],), generator=g).to(x.device)
    out = torch.empty_like(x)
    for code in range(8):
        idx = (k == code).nonzero(as_tuple=True)[0]
        if len(idx):
            out[idx] = dihedral_transform(x[idx], code)
    return out


def _flip(x: torch.Tensor, g: torch.Generator, p: float, dim: int) -> torch.Tensor:
    m = (torch.rand(x.shape[0], generator=g) < p).to(x.device)
    return torch.where(m.view(-1, 1, 1, 1), x.flip(dim), x)


def _sample(x: torch.Tensor, theta: torch.Tensor, mode: str, padding: str, size: int) -> torch.Tensor:
    """grid_sample with per-image affine maps from output to input (normalised coordinates)."""
    grid = F.affine_grid(theta.to(x.device, x.dtype), [x.shape[0], 3, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode=mode, padding_mode=padding, align_corners=False)


def rotate(x: torch.Tensor, angles: torch.Tensor, step: Rotate, scales: torch.Tensor | None = None):
    """Rotate each image counter-clockwise by `angles` degrees about its centre (as PIL does)."""
    rad = angles * math.pi / 180
    s = scales if scales is not None else torch.ones_like(rad)
    cos, sin = torch.cos(rad) / s, torch.sin(rad) / s
    theta = torch.zeros(len(rad), 2, 3, dtype=torch.float64)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    padding = "zeros" if step.fill == "zero" else "reflection"
    return _sample(x, theta, step.interpolation, padding, x.shape[-1])


def _rotate(x: torch.Tensor, g: torch.Generator, step: Rotate) -> torch.Tensor:
    angles = _uniform(x.shape[0], -step.degrees, step.degrees, g)
    scales = _uniform(x.shape[0], *step.scale, g) if step.scale else None
    return rotate(x, angles, step, scales)


def crop_resize(x: torch.Tensor, boxes: torch.Tensor, size: int, interpolation: str) -> torch.Tensor:
    """Crop each image to its box (top, left, height, width) and resize it to `size`, as
    torchvision's `resized_crop` (antialiased; the crop's own border pixels repeat at its edge)."""
    out = []
    for img, (top, left, h, w) in zip(x, boxes.tolist(), strict=True):
        crop = img[None, :, top : top + h, left : left + w]
        out.append(F.interpolate(crop, (size, size), mode=interpolation, antialias=True))
    return torch.cat(out).clamp_(0, 1)


def resized_crop_boxes(
    n: int, height: int, width: int, step: RandomResizedCrop, g: torch.Generator
) -> torch.Tensor:
    """Boxes drawn as `RandomResizedCrop.get_params` draws them: area and log-ratio, ten tries."""
    area = height * width
    log_ratio = (math.log(step.ratio[0]), math.log(step.ratio[1]))
    boxes = []
    for _ in range(n):
        for _ in range(10):
            target = area * float(_uniform(1, *step.scale, g))
            aspect = math.exp(float(_uniform(1, *log_ratio, g)))
            w = round(math.sqrt(target * aspect))
            h = round(math.sqrt(target / aspect))
            if 0 < w <= width and 0 < h <= height:
                i = int(torch.randint(0, height - h + 1, (1,), generator=g))
                j = int(torch.randint(0, width - w + 1, (1,), generator=g))
                boxes.append((i, j, h, w))
                break
        else:  # the central crop with the ratio clamped, as torchvision's fallback
            ratio = width / height
            if ratio < step.ratio[0]:
                w, h = width, round(width / step.ratio[0])
            elif ratio > step.ratio[1]:
                h, w = height, round(height * step.ratio[1])
            else:
                w, h = width, height
            boxes.append(((height - h) // 2, (width - w) // 2, h, w))
    return torch.tensor(boxes, dtype=torch.int64)


COLOUR_OPS = ("brightness", "contrast", "saturation", "hue")


def colour_params(n: int, step: ColorJitter, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(order (n, 4), factors (n, 4)) as ColorJitter draws them; an unused op keeps factor 1 / 0."""
    order = torch.stack([torch.randperm(4, generator=g) for _ in range(n)])
    factors = torch.ones(n, 4, dtype=torch.float64)
    for j, name in enumerate(COLOUR_OPS[:3]):
        v = getattr(step, name)
        if v:
            factors[:, j] = _uniform(n, max(0.0, 1 - v), 1 + v, g)
    factors[:, 3] = _uniform(n, -step.hue, step.hue, g) if step.hue else 0.0
    return order, factors


def colour_jitter(x: torch.Tensor, order: torch.Tensor, factors: torch.Tensor, step: ColorJitter):
    """Apply each image's jitter in its own order with torchvision's tensor ops (on x's device)."""
    active = [j for j, name in enumerate(COLOUR_OPS) if getattr(step, name)]
    out = []
    for img, ops, f in zip(x, order.tolist(), factors.tolist(), strict=True):
        for j in ops:
            if j not in active:
                continue
            if j == 0:
                img = TF.adjust_brightness(img, f[0])
            elif j == 1:
                img = TF.adjust_contrast(img, f[1])
            elif j == 2:
                img = TF.adjust_saturation(img, f[2])
            else:
                img = TF.adjust_hue(img, f[3])
        out.append(img)
    return torch.stack(out)


def hed_jitter(x: torch.Tensor, g: torch.Generator, sigma: float) -> torch.Tensor:
    """Perturb haematoxylin, eosin and DAB concentrations: c' = c·α + β, α∈1±σ, β∈±σ."""
    n = x.shape[0]
    alpha = _uniform(n * 3, 1 - sigma, 1 + sigma, g).view(n, 3, 1, 1).to(x.device, x.dtype)
    beta = _uniform(n * 3, -sigma, sigma, g).view(n, 3, 1, 1).to(x.device, x.dtype)
    od = torch.log(x.clamp_min(1e-6)) / _LOG_ADJUST  # optical density, as in scikit-image
    hed = torch.einsum("ij,njhw->nihw", _HED_FROM_RGB.T.contiguous().to(x.device, x.dtype), od)
    hed = hed * alpha + beta * hed.abs().mean(dim=(-2, -1), keepdim=True).clamp_min(1e-3)
    od = torch.einsum("ij,njhw->nihw", _RGB_FROM_HED.T.contiguous().to(x.device, x.dtype), hed)
    return torch.exp(od * _LOG_ADJUST).clamp(0, 1)


def apply_step(x: torch.Tensor, step: _Step, g: torch.Generator, input_size: int) -> torch.Tensor:
    """One step on a float batch (N, 3, H, W) in [0, 1]."""
    if isinstance(step, Resize):
        size = step.size or input_size
        if x.shape[-1] == size and x.shape[-2] == size:
            return x
        return F.interpolate(x, (size, size), mode=step.interpolation, antialias=True).clamp_(0, 1)
    if isinstance(step, HFlip):
        return _flip(x, g, step.p, -1)
    if isinstance(step, VFlip):
        return _flip(x, g, step.p, -2)
    if isinstance(step, Dihedral):
        return _dihedral(x, g)
    if isinstance(step, Rotate):
        return _rotate(x, g, step)
    if isinstance(step, ColorJitter):
        return colour_jitter(x, *colour_params(x.shape[0], step, g), step)
    if isinstance(step, RandomResizedCrop):
        boxes = resized_crop_boxes(x.shape[0], x.shape[-2], x.shape[-1], step, g)
        return crop_resize(x, boxes, step.size or input_size, step.interpolation)
    if isinstance(step, HedJitter):
        return hed_jitter(x, g, step.sigma)
    raise TypeError(f"unknown augmentation step {step!r}")


def augment(x: torch.Tensor, g: torch.Generator, steps: list[Step], input_size: int) -> torch.Tensor:
    """Apply `steps` in order to a float batch in [0, 1], on the batch's device."""
    for step in steps:
        x = apply_step(x, step, g, input_size)
    return x
