"""One interface for every training mode: what trains, how it fits, how it is rebuilt."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from mitobench.models.encoder import Encoder
from mitobench.recipes.config import ModeOptions
from mitobench.train.loop import FitContext, FitResult, fit
from mitobench.train.model import Classifier


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

    def fit(self, model: Classifier, ctx: FitContext) -> FitResult:
        """Train one fold (resumable): the training loop, unless the mode has its own."""
        return fit(model, ctx)
