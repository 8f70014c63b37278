"""A classifier is an encoder plus one logit; which parameters train is the mode's business."""

from __future__ import annotations

import torch
from timm.layers import trunc_normal_
from torch import nn

from mitobench.models.encoder import Encoder


class Classifier(nn.Module):
    """encoder -> embedding -> linear head -> one logit (atypical)."""

    def __init__(self, encoder: Encoder | None, embed_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(embed_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x) if self.encoder is not None else x
        return self.head(features.float() if features.dtype != self.head.weight.dtype else features).squeeze(
            -1
        )


def init_head(head: nn.Linear, how: str) -> None:
    """Re-initialise a new head as a recipe says (`TrainConfig.head_init`); `torch` keeps nn.Linear's."""
    if how == "timm":
        trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """What a fold changes: trainable parameters and all buffers (e.g. BatchNorm statistics)."""
    state = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    persistent = model.state_dict().keys()
    state.update({n: b.detach() for n, b in model.named_buffers() if n in persistent})
    return {k: v.contiguous().clone() for k, v in state.items()}


def load_trainable_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a `trainable_state`; every key must exist in the model."""
    unknown = set(state) - set(model.state_dict())
    if unknown:
        raise KeyError(f"checkpoint keys not in the model: {sorted(unknown)[:3]}")
    model.load_state_dict(state, strict=False)
