"""Typed training configuration; every knob has a default that reproduces the paper."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mitobench.errors import ConfigError
from mitobench.train.augment import AugmentConfig

Mode = Literal["e2e", "probe", "lora"]


class LoraConfig(BaseModel):
    """LoRA through peft; defaults are the paper's (r=8, alpha=16, dropout 0.3, qkv/proj/fc1/fc2)."""

    model_config = ConfigDict(extra="forbid")
    r: int = 8
    alpha: int = 16
    dropout: float = 0.3
    targets: list[str] | None = None
    """Module names to adapt; None takes the model spec's `lora_targets`."""


class ProbeConfig(BaseModel):
    """Linear probing on frozen, cached embeddings."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["torch", "sklearn"] = "torch"
    """`torch`: a linear head under the training protocol; `sklearn`: logistic regression."""
    c_grid: list[float] = Field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0])
    """Inverse regularisation strengths tried for `sklearn`, chosen on the fold's validation data."""


class TrainConfig(BaseModel):
    """One fold's training recipe."""

    model_config = ConfigDict(extra="forbid")
    input_size: int | None = 224
    """Side of the network input; patches are resized from 128 px. None: the model's default."""
    batch_size: int = Field(8, ge=1)
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(5e-5, gt=0)
    weight_decay: float = 1e-5
    head_lr_scale: float = 1.0
    """Learning-rate multiplier for the new classification head."""
    schedule: Literal["plateau", "cosine"] = "plateau"
    warmup_epochs: float = 0.0
    plateau_factor: float = 0.5
    plateau_patience: int = 3
    min_lr: float = 1e-7
    max_epochs: int = Field(100, ge=1)
    early_stopping_patience: int | None = 15
    epoch_size: int | None = None
    """Samples drawn per epoch (None: the number of training samples, as the reference)."""
    balance: Literal["sampler", "loss", "none"] = "sampler"
    """`sampler`: WeightedRandomSampler as the reference; `loss`: positive-class weight in BCE."""
    loss: Literal["bce", "focal"] = "bce"
    label_smoothing: float = 0.0
    focal_gamma: float = 2.0
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    threshold: Literal["fixed", "tune"] = "fixed"
    """`fixed`: 0.5 as the paper; `tune`: maximise balanced accuracy on the fold's validation set."""
    fixed_threshold: float = 0.5
    selection: Literal["balanced_accuracy", "auroc"] = "balanced_accuracy"
    """Validation metric for early stopping and the best checkpoint."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """`auto`: bf16 autocast on CUDA, fp32 on CPU."""
    channels_last: bool = True
    eval_batch_size: int = 64
    tta: bool = False
    """Also report test-time augmentation over the 8 dihedral transforms (labelled separately)."""
    seed: int = 42


PAPER_PROBE: dict[str, Any] = {
    # The reference probes: lr 1e-3, wd 1e-4, embeddings extracted once without augmentation.
    "lr": 1e-3,
    "weight_decay": 1e-4,
    "augment": {"hflip": False, "vflip": False, "brightness": 0, "contrast": 0, "saturation": 0, "hue": 0},
}

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The reference protocol (see ../shared/reference/README.md and the reference scripts).
    "paper": {
        "e2e": {"augment": {"rotate_degrees": 10.0}},
        "lora": {"early_stopping_patience": 10},
        "probe": PAPER_PROBE,
    },
    # What fits a 2-core CPU and beats the paper's EfficientNetV2-M there.
    "cpu": {
        "e2e": {
            "input_size": 160,
            "batch_size": 32,
            "optimizer": "adamw",
            "lr": 1e-3,
            "weight_decay": 1e-2,
            "schedule": "cosine",
            "warmup_epochs": 0.5,
            "max_epochs": 8,
            "early_stopping_patience": None,
            "balance": "sampler",
            "label_smoothing": 0.1,
            "threshold": "tune",
            "selection": "auroc",
            "precision": "fp32",
            "eval_batch_size": 128,
            "augment": {
                "dihedral": True,
                "rotate_degrees": 15.0,
                "scale_range": (0.9, 1.1),
                "hed_sigma": 0.05,
                "brightness": 0.15,
                "contrast": 0.15,
                "saturation": 0.15,
                "hue": 0.04,
            },
        },
        "probe": {**PAPER_PROBE, "threshold": "tune"},
        "lora": {
            "batch_size": 32,
            "optimizer": "adamw",
            "lr": 5e-4,
            "schedule": "cosine",
            "max_epochs": 10,
            "early_stopping_patience": None,
            "threshold": "tune",
            "precision": "bf16",
            "augment": {"dihedral": True, "hed_sigma": 0.05},
        },
    },
    # A better GPU recipe for foundation models and ViTs.
    "gpu": {
        "e2e": {
            "batch_size": 64,
            "optimizer": "adamw",
            "lr": 1e-4,
            "weight_decay": 0.05,
            "schedule": "cosine",
            "warmup_epochs": 1,
            "max_epochs": 30,
            "early_stopping_patience": None,
            "label_smoothing": 0.1,
            "threshold": "tune",
            "selection": "auroc",
            "tta": True,
            "augment": {"dihedral": True, "rotate_degrees": 15.0, "hed_sigma": 0.05},
        },
        "lora": {
            "batch_size": 64,
            "optimizer": "adamw",
            "lr": 3e-4,
            "weight_decay": 0.05,
            "schedule": "cosine",
            "warmup_epochs": 1,
            "max_epochs": 30,
            "early_stopping_patience": None,
            "loss": "focal",
            "threshold": "tune",
            "selection": "auroc",
            "tta": True,
            "augment": {"dihedral": True, "hed_sigma": 0.05},
        },
        "probe": {**PAPER_PROBE, "threshold": "tune"},
    },
}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def train_config(mode: Mode, preset: str = "paper", overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The preset's recipe for `mode`, with `overrides` (nested dicts) applied on top."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}", f"use one of {', '.join(PRESETS)}")
    values = _merge(PRESETS[preset].get(mode, {}), overrides or {})
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(f"invalid training settings: {_first_error(exc)}", "fix the config") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"
