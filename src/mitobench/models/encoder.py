"""An encoder carries its network, its input transform and its pooling together.

No caller can pair a model with the wrong normalisation: images go in as uint8, embeddings
come out.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mitobench.models.spec import InputTransform, ModelSpec, Pooling

PreparePath = Literal["uint8", "float"]


def default_path(dev: torch.device) -> PreparePath:
    """uint8 resizing is a CPU kernel (about 5x faster than resizing floats there); elsewhere floats."""
    return "uint8" if dev.type == "cpu" else "float"


class Encoder(nn.Module):
    """uint8 images (N, H, W, 3) or float tensors already prepared -> (N, embed_dim) embeddings.

    The encoder carries its input transform and pooling (the model card's unless a recipe sets
    others with `configure`), so no caller can pair a network with the wrong preprocessing.
    """

    def __init__(
        self, spec: ModelSpec, network: nn.Module, weights_origin: str, fingerprint: str = ""
    ) -> None:
        super().__init__()
        self.spec = spec
        self.network = network
        self.weights_origin = weights_origin
        self.fingerprint = fingerprint or weights_origin
        """Identity of the weights (keys the embedding cache)."""
        self.register_buffer("mean", torch.zeros(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.ones(1, 3, 1, 1), persistent=False)
        self.configure(spec.transform, spec.pooling)

    def configure(self, transform: InputTransform, pooling: Pooling) -> Encoder:
        """Set the input transform and pooling (a recipe's, e.g. the paper script's for this model)."""
        self.transform = transform
        self.pooling = pooling
        self.mean.copy_(torch.tensor(transform.mean).view(1, 3, 1, 1))
        self.std.copy_(torch.tensor(transform.std).view(1, 3, 1, 1))
        return self

    @property
    def embed_dim(self) -> int:
        """Width of the embedding as built (differs from the spec's only for reduced test models)."""
        width = getattr(self.network, "num_features", None)
        if width is None:
            width = self.network.model.config.hidden_size
        return int(width) * (2 if self.pooling is Pooling.CLS_MEAN else 1)

    def prepare(self, images: torch.Tensor, path: PreparePath | None = None) -> torch.Tensor:
        """uint8 NHWC (or float NCHW in [0, 1]) -> normalised float NCHW at the transform's size
        (see `prepare`), on the encoder's device."""
        return prepare(images.to(self.mean.device), self.transform, path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings of prepared (normalised) images."""
        if self.pooling is Pooling.POOLED:
            return self.network(x)
        tokens = self.network.forward_features(x)
        cls = tokens[:, 0]
        if self.pooling is Pooling.CLS:
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


def prepare(images: torch.Tensor, t: InputTransform, path: PreparePath | None = None) -> torch.Tensor:
    """uint8 NHWC (or float NCHW in [0, 1]) -> normalised float NCHW at the transform's size.

    One implementation for every engine (PyTorch, ONNX Runtime). `path` picks how uint8 input is
    resized: `uint8` (the CPU's fixed-point, PIL-equivalent kernel, then one pass to normalise)
    or `float` (divide by 255 first: the only way on a GPU). None picks by the device; both give
    the same image within a grey level.
    """
    x = images
    if x.dtype == torch.uint8 and x.shape[-1] == 3:
        x = x.permute(0, 3, 1, 2)
    mean = torch.tensor(t.mean, device=x.device)
    std = torch.tensor(t.std, device=x.device)
    scale = 1.0 / std
    levels = x.dtype == torch.uint8  # 0..255 values (uint8, or as floats on the float path)
    if levels and (path or default_path(x.device)) == "float":
        x = x.float()
    if x.shape[-1] != t.resize or x.shape[-2] != t.resize:
        x = _resize(x, t.resize, t.interpolation, 255.0 if levels else 1.0)
    if t.resize != t.size:
        off = round((t.resize - t.size) / 2.0)  # torchvision's CenterCrop offset
        x = x[..., off : off + t.size, off : off + t.size]
    if levels:
        x, scale = x.float(), scale / 255.0
    return _normalise(x, scale, -mean / std)


def _resize(x: torch.Tensor, side: int, mode: str, top: float) -> torch.Tensor:
    """Antialiased resize to side x side as PIL does it: width first, then height.

    uint8 input uses torch's fixed-point kernel (PIL's). Float input is saturated after each
    pass, as PIL's uint8 intermediate image is (bicubic overshoots), and grey levels (top=255) are
    rounded at the end: within one grey level of the uint8 path and of PIL (tested).
    """
    if x.dtype == torch.uint8:
        return F.interpolate(x, size=(side, side), mode=mode, antialias=True)
    for size in ((x.shape[-2], side), (side, side)):
        if tuple(x.shape[-2:]) != size:
            x = F.interpolate(x, size=size, mode=mode, antialias=True).clamp_(0.0, top)
    return x.round_() if top == 255.0 else x


def _normalise(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """x * scale + shift per channel in one pass (over the NHWC view when x is channels-last)."""
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return torch.addcmul(shift, x.permute(0, 2, 3, 1), scale).permute(0, 3, 1, 2)
    return torch.addcmul(shift.view(3, 1, 1), x, scale.view(3, 1, 1))
