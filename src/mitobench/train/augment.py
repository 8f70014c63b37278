"""Batched augmentation on float tensors (N, 3, H, W) in [0, 1], driven by a seeded generator.

Everything runs on whole batches (no per-sample PIL work) and draws its randomness from one
`torch.Generator`, so a resumed run replays exactly the same augmentations.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict

# Ruifrok & Johnston stain vectors (as in scikit-image's rgb_from_hed).
_RGB_FROM_HED = torch.tensor(
    [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], dtype=torch.float32
)
_HED_FROM_RGB = torch.linalg.inv(_RGB_FROM_HED)
_LOG_ADJUST = math.log(1e-6)


class AugmentConfig(BaseModel):
    """Which augmentations to apply; the defaults are the paper's foundation-model recipe."""

    model_config = ConfigDict(extra="forbid")

    hflip: bool = True
    vflip: bool = True
    dihedral: bool = False
    """All 8 flips/rotations by 90° (mitoses have no orientation); implies both flips."""
    rotate_degrees: float = 0.0
    """Random rotation in ±degrees (the paper's end-to-end recipe uses 10)."""
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1
    hed_sigma: float = 0.0
    """HED stain jitter strength (Tellez et al.): scale and shift of each stain channel."""
    scale_range: tuple[float, float] | None = None
    """Random zoom (e.g. (0.9, 1.1)), applied with the rotation."""


def _uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=g) * (high - low) + low


def _grey(x: torch.Tensor) -> torch.Tensor:
    return (0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).unsqueeze(1)


def dihedral(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Apply one of the 8 dihedral transforms per sample."""
    k = torch.randint(0, 8, (x.shape[0],), generator=g)
    out = torch.empty_like(x)
    for code in range(8):
        idx = (k == code).nonzero(as_tuple=True)[0]
        if len(idx):
            out[idx] = dihedral_transform(x[idx], code)
    return out


def dihedral_transform(x: torch.Tensor, code: int) -> torch.Tensor:
    """The `code`-th (0..7) dihedral transform: rotate by 90°·(code % 4), then flip if code ≥ 4."""
    y = torch.rot90(x, code % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if code >= 4 else y


def flips(x: torch.Tensor, g: torch.Generator, h: bool, v: bool) -> torch.Tensor:
    n = x.shape[0]
    if h:
        m = torch.rand(n, generator=g) < 0.5
        x = torch.where(m.view(-1, 1, 1, 1), x.flip(-1), x)
    if v:
        m = torch.rand(n, generator=g) < 0.5
        x = torch.where(m.view(-1, 1, 1, 1), x.flip(-2), x)
    return x


def affine(
    x: torch.Tensor, g: torch.Generator, degrees: float, scale: tuple[float, float] | None
) -> torch.Tensor:
    """Random rotation (and zoom) with reflection padding, batched via affine_grid."""
    n = x.shape[0]
    angle = _uniform(n, -degrees, degrees, g) * math.pi / 180
    s = _uniform(n, *scale, g) if scale else torch.ones(n)
    cos, sin = torch.cos(angle) / s, torch.sin(angle) / s
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def color_jitter(x: torch.Tensor, g: torch.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """torchvision-style brightness/contrast/saturation/hue jitter, per sample, batched."""
    n = x.shape[0]
    if cfg.brightness:
        x = x * _uniform(n, 1 - cfg.brightness, 1 + cfg.brightness, g).view(-1, 1, 1, 1)
    if cfg.contrast:
        c = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast, g).view(-1, 1, 1, 1)
        mean = _grey(x).mean(dim=(-2, -1), keepdim=True)
        x = (x - mean) * c + mean
    if cfg.saturation:
        s = _uniform(n, 1 - cfg.saturation, 1 + cfg.saturation, g).view(-1, 1, 1, 1)
        grey = _grey(x)
        x = (x - grey) * s + grey
    if cfg.hue:
        x = _hue_rotate(x.clamp(0, 1), _uniform(n, -cfg.hue, cfg.hue, g))
    return x.clamp(0, 1)


def _hue_rotate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate hue by `shift` turns in YIQ space (a fast, smooth stand-in for HSV hue shift)."""
    to_yiq = torch.tensor(
        [[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], dtype=x.dtype
    )
    from_yiq = torch.linalg.inv(to_yiq)
    theta = shift.to(x.dtype) * 2 * math.pi
    cos, sin = torch.cos(theta), torch.sin(theta)
    rot = torch.zeros(len(shift), 3, 3, dtype=x.dtype)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, -sin, sin, cos
    m = from_yiq @ rot @ to_yiq  # (n, 3, 3)
    return torch.einsum("nij,njhw->nihw", m, x)


def hed_jitter(x: torch.Tensor, g: torch.Generator, sigma: float) -> torch.Tensor:
    """Perturb haematoxylin, eosin and DAB concentrations: c' = c·α + β, α∈1±σ, β∈±σ."""
    n = x.shape[0]
    od = torch.log(x.clamp_min(1e-6)) / _LOG_ADJUST  # optical density, as in scikit-image
    hed = torch.einsum("ij,njhw->nihw", _HED_FROM_RGB.T.contiguous().to(x.dtype), od)
    alpha = _uniform(n * 3, 1 - sigma, 1 + sigma, g).view(n, 3, 1, 1).to(x.dtype)
    beta = _uniform(n * 3, -sigma, sigma, g).view(n, 3, 1, 1).to(x.dtype)
    hed = hed * alpha + beta * hed.abs().mean(dim=(-2, -1), keepdim=True).clamp_min(1e-3)
    od = torch.einsum("ij,njhw->nihw", _RGB_FROM_HED.T.contiguous().to(x.dtype), hed)
    return torch.exp(od * _LOG_ADJUST).clamp(0, 1)


def augment(x: torch.Tensor, g: torch.Generator, cfg: AugmentConfig) -> torch.Tensor:
    """Apply the configured augmentations to a float batch in [0, 1]."""
    if cfg.dihedral:
        x = dihedral(x, g)
    elif cfg.hflip or cfg.vflip:
        x = flips(x, g, cfg.hflip, cfg.vflip)
    if cfg.rotate_degrees or cfg.scale_range:
        x = affine(x, g, cfg.rotate_degrees, cfg.scale_range)
    if cfg.hed_sigma:
        x = hed_jitter(x, g, cfg.hed_sigma)
    if cfg.brightness or cfg.contrast or cfg.saturation or cfg.hue:
        x = color_jitter(x, g, cfg)
    return x
