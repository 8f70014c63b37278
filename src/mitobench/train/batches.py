"""Turning in-memory arrays into model inputs: uint8 images (augmented) or cached embeddings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mitobench.models.encoder import Encoder
from mitobench.train.augment import AugmentConfig, augment, dihedral_transform

PATCH_SIZE = (128, 128)
"""Width and height of the training patches; new patches of other sizes are resized to it."""


@dataclass
class ImageBatches:
    """Decoded patches (N, H, W, 3) uint8 -> augmented, resized, normalised network input."""

    images: np.ndarray
    labels: np.ndarray
    encoder: Encoder
    input_size: int | None
    augment: AugmentConfig | None = None
    channels_last: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    def get(
        self, idx: np.ndarray, g: torch.Generator | None = None, dihedral_code: int | None = None
    ) -> torch.Tensor:
        x = torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2)
        if g is not None and self.augment is not None:
            x = augment(x.float().div_(255), g, self.augment)
        # else uint8 all the way to `prepare`, which resizes it cheaply
        if dihedral_code is not None:
            x = dihedral_transform(x, dihedral_code)
        x = self.encoder.prepare(x, self.input_size)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


@dataclass
class EmbeddingBatches:
    """Frozen embeddings (N, D) float32: augmentation does not apply."""

    embeddings: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def get(
        self, idx: np.ndarray, g: torch.Generator | None = None, dihedral_code: int | None = None
    ) -> torch.Tensor:
        return torch.from_numpy(self.embeddings[idx])
