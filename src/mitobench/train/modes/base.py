"""One interface for every training mode: what trains, how it fits, how it is rebuilt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch

from mitobench.models.encoder import Encoder
from mitobench.progress import Progress
from mitobench.train.batches import EmbeddingBatches, ImageBatches
from mitobench.train.config import LoraConfig, ProbeConfig, TrainConfig
from mitobench.train.loop import FitResult, fit
from mitobench.train.model import Classifier
from mitobench.train.rundir import FoldDir


@dataclass(frozen=True)
class ModeOptions:
    """The settings only some modes read."""

    lora: LoraConfig = field(default_factory=LoraConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)


class TrainingMode(ABC):
    """A way to train a classifier on top of an encoder."""

    name: ClassVar[str]
    on_embeddings: ClassVar[bool] = False
    """Trains on embeddings extracted once from the frozen encoder (no augmentation)."""
    keeps_base: ClassVar[bool] = True
    """A fold's saved tensors need the pretrained weights beside them to rebuild the model."""

    @abstractmethod
    def classifier(self, encoder: Encoder, options: ModeOptions) -> Classifier:
        """The model to train; only the parameters this mode trains require grad."""

    def inference_model(self, encoder: Encoder, options: ModeOptions) -> Classifier:
        """The model that scores images; a fold's saved tensors load into it."""
        return self.classifier(encoder, options)

    def fit(
        self,
        model: Classifier,
        train: ImageBatches | EmbeddingBatches,
        val: ImageBatches | EmbeddingBatches,
        cfg: TrainConfig,
        fold: FoldDir,
        dev: torch.device,
        options: ModeOptions,
        progress: Progress | None = None,
        stop_after_epochs: int | None = None,
    ) -> FitResult:
        """Train one fold (resumable); the training loop unless the mode has its own."""
        return fit(model, train, val, cfg, fold, dev, progress, stop_after_epochs)
