"""Turning in-memory arrays into model inputs: uint8 images (augmented) or cached embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from mitobench.models.encoder import Encoder
from mitobench.train.augment import Step, augment, dihedral_transform


@dataclass
class ImageBatches:
    """Decoded patches (N, H, W, 3) uint8 -> augmented, resized, normalised network input.

    The batch moves to `device` as uint8 and is augmented and prepared there; the encoder's
    transform (size, resize, crop, normalisation) makes the network input.
    """

    images: np.ndarray
    labels: np.ndarray
    encoder: Encoder
    augment: list[Step] = field(default_factory=list)
    channels_last: bool = False
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    targets: np.ndarray | None = None
    """Training targets in [0, 1] other than `labels` (e.g. the experts' vote share)."""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def input_size(self) -> int:
        return self.encoder.transform.size

    def get(
        self, idx: np.ndarray, g: torch.Generator | None = None, dihedral_code: int | None = None
    ) -> torch.Tensor:
        x = torch.from_numpy(self.images[idx]).to(self.device).permute(0, 3, 1, 2)
        if g is not None and self.augment:
            x = augment(x.float().div_(255), g, self.augment, self.input_size)
        # else uint8 all the way to `prepare`, which resizes it cheaply
        if dihedral_code is not None:
            x = dihedral_transform(x, dihedral_code)
        x = self.encoder.prepare(x)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


@dataclass
class EmbeddingBatches:
    """Frozen embeddings (N, D) float32: augmentation does not apply."""

    embeddings: np.ndarray
    labels: np.ndarray
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    targets: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def get(
        self, idx: np.ndarray, g: torch.Generator | None = None, dihedral_code: int | None = None
    ) -> torch.Tensor:
        return torch.from_numpy(self.embeddings[idx]).to(self.device)
