"""An encoder carries its network, its input transform and its pooling together.

No caller can pair a model with the wrong normalisation: images go in as uint8, embeddings
come out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mitobench.models.spec import ModelSpec, Pooling


class Encoder(nn.Module):
    """uint8 images (N, H, W, 3) or float tensors already prepared -> (N, embed_dim) embeddings."""

    def __init__(
        self, spec: ModelSpec, network: nn.Module, weights_origin: str, fingerprint: str = ""
    ) -> None:
        super().__init__()
        self.spec = spec
        self.network = network
        self.weights_origin = weights_origin
        self.fingerprint = fingerprint or weights_origin
        """Identity of the weights (keys the embedding cache)."""
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    @property
    def embed_dim(self) -> int:
        """Width of the embedding as built (differs from the spec's only for reduced test models)."""
        width = getattr(self.network, "num_features", None)
        if width is None:
            width = self.network.model.config.hidden_size
        return int(width) * (2 if self.spec.pooling is Pooling.CLS_MEAN else 1)

    def prepare(self, images: torch.Tensor, input_size: int | None = None) -> torch.Tensor:
        """uint8 NHWC (or float NCHW in [0, 1]) -> normalised float NCHW at the model's input size.

        On a CPU, uint8 images are resized as uint8 (the fixed-point, PIL-equivalent kernel, about 5x
        faster than resizing floats); conversion and normalisation are then one pass each.
        """
        x = images
        if x.dtype == torch.uint8 and x.shape[-1] == 3:
            x = x.permute(0, 3, 1, 2)
        x = x.to(self.mean.device)
        size = input_size or self.spec.input_size
        resize = self.spec.resize_size if input_size is None else None
        target = resize or size
        needs_resize = x.shape[-1] != target or x.shape[-2] != target
        scale = 1.0 / self.std.view(3)
        if x.dtype == torch.uint8 and not (needs_resize and x.device.type == "cpu"):
            x, scale = x.float(), scale / 255.0
        if needs_resize:
            mode = (
                self.spec.interpolation if self.spec.interpolation in ("bilinear", "bicubic") else "bilinear"
            )
            x = F.interpolate(x, size=(target, target), mode=mode, align_corners=False, antialias=True)
            x, scale = (x.float(), scale / 255.0) if x.dtype == torch.uint8 else (x.clamp_(0.0, 1.0), scale)
        if resize and resize != size:
            off = (resize - size) // 2
            x = x[..., off : off + size, off : off + size]
        return _normalise(x, scale, -self.mean.view(3) / self.std.view(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of prepared (normalised) images."""
        pooling = self.spec.pooling
        if pooling is Pooling.POOLED:
            return self.network(x)
        tokens = self.network.forward_features(x)
        cls = tokens[:, 0]
        if pooling is Pooling.CLS:
            return cls
        patches = tokens[:, int(self.network.num_prefix_tokens) :]
        return torch.cat([cls, patches.mean(dim=1)], dim=-1)

    @torch.inference_mode()
    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Prepare and embed a batch in inference mode."""
        return self(self.prepare(images))


class TransformersTokens(nn.Module):
    """Gives a transformers vision model timm's token interface (`forward_features`, prefix count)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_prefix_tokens = 1 + int(getattr(model.config, "num_register_tokens", 0) or 0)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x).last_hidden_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[:, 0]


def _normalise(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x * scale + shift per channel in one pass (over the NHWC view when x is channels-last)."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.addcmul(shift, x.permute(0, 2, 3, 1), scale).permute(0, 3, 1, 2)
    return torch.addcmul(shift.view(3, 1, 1), x, scale.view(3, 1, 1))
