"""Binary losses on one logit: BCE (the paper) or focal, with optional label smoothing."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mitobench.recipes.config import TrainConfig


def binary_loss(
    logits: torch.Tensor, targets: torch.Tensor, cfg: TrainConfig, pos_weight: float | None
) -> torch.Tensor:
    """Mean loss over the batch; `pos_weight` up-weights atypical figures when balancing by loss."""
    y = targets.float()
    if cfg.label_smoothing:
        y = y * (1 - cfg.label_smoothing) + 0.5 * cfg.label_smoothing
    weight = torch.tensor(pos_weight, dtype=logits.dtype, device=logits.device) if pos_weight else None
    if cfg.loss == "bce":
        return F.binary_cross_entropy_with_logits(logits, y, pos_weight=weight)
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none", pos_weight=weight)
    p = torch.sigmoid(logits)
    p_t = p * y + (1 - p) * (1 - y)
    return ((1 - p_t) ** cfg.focal_gamma * bce).mean()
