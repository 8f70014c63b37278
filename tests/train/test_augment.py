"""Batched augmentations: the dihedral group, stain jitter and reproducibility."""

from __future__ import annotations

import torch

from mitobench.train.augment import AugmentConfig, augment, dihedral_transform, hed_jitter


def test_dihedral_transforms_are_the_eight_symmetries() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    outs = {tuple(dihedral_transform(x, c).flatten().tolist()) for c in range(8)}
    assert len(outs) == 8
    assert torch.equal(dihedral_transform(x, 0), x)


def test_hed_jitter_without_strength_is_the_identity() -> None:
    x = torch.rand(3, 3, 16, 16).clamp(0.05, 1)
    y = hed_jitter(x, torch.Generator().manual_seed(0), 0.0)
    torch.testing.assert_close(y, x, atol=1e-5, rtol=1e-4)


def test_same_seed_same_augmentation_in_range() -> None:
    cfg = AugmentConfig(dihedral=True, rotate_degrees=15, scale_range=(0.9, 1.1), hed_sigma=0.05)
    x = torch.rand(8, 3, 32, 32)
    a = augment(x, torch.Generator().manual_seed(1), cfg)
    b = augment(x, torch.Generator().manual_seed(1), cfg)
    c = augment(x, torch.Generator().manual_seed(2), cfg)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1 and a.shape == x.shape
