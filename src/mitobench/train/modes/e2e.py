"""End to end: the whole network and the head train."""

from __future__ import annotations

from mitobench.models.encoder import Encoder
from mitobench.train.model import Classifier
from mitobench.train.modes.base import ModeOptions, TrainingMode


class EndToEnd(TrainingMode):
    name = "e2e"
    keeps_base = False  # a fold's tensors are the whole network

    def classifier(self, encoder: Encoder, options: ModeOptions) -> Classifier:
        model = Classifier(encoder, encoder.embed_dim)
        for p in model.parameters():
            p.requires_grad_(True)
        return model
