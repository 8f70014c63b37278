"""Training augmentation steps as data: each a small typed object (`{op: rotate, degrees: 10}` in
YAML), so a recipe reads like the `transforms.Compose([...])` of the reference scripts and keeps
its order. Only the schema lives here (a recipe is read without torch); `train/augment.py`
applies the steps to batches."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Resize(_Step):
    """torchvision `Resize(size)`: to `size` (None: the network's input size)."""

    op: Literal["resize"] = "resize"
    size: int | None = Field(None, ge=1)
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"


class HFlip(_Step):
    """`RandomHorizontalFlip(p)`."""

    op: Literal["hflip"] = "hflip"
    p: float = Field(0.5, ge=0, le=1)


class VFlip(_Step):
    """`RandomVerticalFlip(p)`."""

    op: Literal["vflip"] = "vflip"
    p: float = Field(0.5, ge=0, le=1)


class Dihedral(_Step):
    """One of the 8 flips/rotations by 90° per image (mitoses have no orientation)."""

    op: Literal["dihedral"] = "dihedral"


class Rotate(_Step):
    """`RandomRotation(degrees)` (nearest, black fill: torchvision's defaults), optionally with zoom."""

    op: Literal["rotate"] = "rotate"
    degrees: float = Field(ge=0, le=180)
    interpolation: Literal["nearest", "bilinear"] = "nearest"
    fill: Literal["zero", "reflect"] = "zero"
    scale: tuple[float, float] | None = None
    """Random zoom range, e.g. (0.9, 1.1); None keeps the scale."""


class ColorJitter(_Step):
    """`ColorJitter(brightness, contrast, saturation, hue)`: factors and a random order per image."""

    op: Literal["color_jitter"] = "color_jitter"
    brightness: float = Field(0.0, ge=0)
    contrast: float = Field(0.0, ge=0)
    saturation: float = Field(0.0, ge=0)
    hue: float = Field(0.0, ge=0, le=0.5)


class RandomResizedCrop(_Step):
    """`RandomResizedCrop(size, scale, ratio)`: a random box resized to `size` (None: input size)."""

    op: Literal["random_resized_crop"] = "random_resized_crop"
    size: int | None = Field(None, ge=1)
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: Literal["bilinear", "bicubic"] = "bilinear"

    @model_validator(mode="after")
    def _ordered(self) -> RandomResizedCrop:
        if not (0 < self.scale[0] <= self.scale[1] <= 1 and 0 < self.ratio[0] <= self.ratio[1]):
            raise ValueError("scale must satisfy 0 < low <= high <= 1, ratio 0 < low <= high")
        return self


class HedJitter(_Step):
    """HED stain jitter (Tellez et al.): scale and shift of each stain's optical density by ±sigma."""

    op: Literal["hed"] = "hed"
    sigma: float = Field(ge=0, le=1)


Step = Annotated[
    Resize | HFlip | VFlip | Dihedral | Rotate | ColorJitter | RandomResizedCrop | HedJitter,
    Field(discriminator="op"),
]
