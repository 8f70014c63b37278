"""Typed training configuration; every knob has a default that reproduces the paper.

Presets are packaged YAML files (`recipes/presets/*.yaml`), validated when they are read: each
holds per-mode settings and, for `paper`, each reference script's own settings per model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Annotated, Any, Literal, TypeVar, get_args

from pydantic import (
    BaseModel,
    Field,
    PositiveFloat,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from mitobench.config_file import STRICT, first_error, packaged_yaml
from mitobench.errors import ConfigError
from mitobench.models.spec import InputTransform, Interpolation, ModelSpec, Pooling
from mitobench.recipes.steps import (
    ColorJitter,
    HFlip,
    RandomResizedCrop,
    Resize,
    Rotate,
    Step,
)

Mode = Literal["e2e", "probe", "lora"]
MODES: tuple[str, ...] = get_args(Mode)
Precision = Literal["auto", "fp32", "bf16", "fp16"]


MAX_INPUT_SIZE = 1024
"""Larger inputs than any pathology model uses: a typo (e.g. 2240) would only exhaust memory."""
MAX_BATCH = 4096
MAX_SEED = 2**31 - 1


class LoraConfig(BaseModel):
    """LoRA through peft; defaults are the paper's (r=8, alpha=16, dropout 0.3, qkv/proj/fc1/fc2)."""

    model_config = STRICT
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.3, ge=0, lt=1)
    targets: list[str] | None = None
    """Module names to adapt; None takes the model spec's `lora_targets`."""


class ProbeConfig(BaseModel):
    """Linear probing on frozen, cached embeddings."""

    model_config = STRICT
    method: Literal["torch", "sklearn"] = "torch"
    """`torch`: a linear head under the training protocol; `sklearn`: logistic regression."""
    c_grid: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0], min_length=1
    )
    """Inverse regularisation strengths tried for `sklearn`, chosen on the fold's validation data."""


MODE_OPTIONS: dict[str, type[BaseModel]] = {"lora": LoraConfig, "probe": ProbeConfig}
"""Each mode's own settings block, by name: a run's and a grid's `lora:` / `probe:` and
`--set lora.r=16` reach it. A mode with settings adds its block here and reads it with
`ModeOptions.of` — nothing else names it."""

_Block = TypeVar("_Block", bound=BaseModel)


@dataclass(frozen=True)
class ModeOptions:
    """The settings only some modes read: one validated block per `MODE_OPTIONS` entry."""

    blocks: dict[str, BaseModel] = field(default_factory=dict)

    def of(self, kind: type[_Block]) -> _Block:
        """The block of type `kind` (its defaults when the run did not set it)."""
        found = [b for b in self.blocks.values() if isinstance(b, kind)]
        return found[0] if found else kind()

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> ModeOptions:
        """Validate each block given (`{"lora": {"r": 16}}`); ValueError names the first bad one."""
        unknown = sorted(set(values) - set(MODE_OPTIONS))
        if unknown:
            raise ValueError(f"{unknown[0]}: no mode has such settings (known: {', '.join(MODE_OPTIONS)})")
        blocks: dict[str, BaseModel] = {}
        for name, kind in MODE_OPTIONS.items():
            try:
                blocks[name] = kind.model_validate(values.get(name) or {})
            except ValidationError as exc:
                raise ValueError(f"{name}.{first_error(exc)}") from None
        return cls(blocks)

    def dump(self) -> dict[str, dict[str, Any]]:
        """Every block's settings, defaults included, as run.json and grid files write them."""
        return {name: self.of(kind).model_dump() for name, kind in MODE_OPTIONS.items()}


class WithModeOptions(BaseModel):
    """A config holding the modes' settings blocks at its top level (`lora:`, `probe:`, as in
    run.json and grid files), validated by `MODE_OPTIONS` into `options`."""

    options: ModeOptions = Field(default_factory=ModeOptions, exclude=True)
    model_config = {**STRICT, "arbitrary_types_allowed": True}

    @model_validator(mode="before")
    @classmethod
    def _gather_blocks(cls, values: Any) -> Any:
        if isinstance(values, dict) and "options" not in values:
            blocks = {k: values[k] for k in MODE_OPTIONS if k in values}
            values = {k: v for k, v in values.items() if k not in MODE_OPTIONS}
            values["options"] = ModeOptions.from_values(blocks)
        return values

    @model_serializer(mode="wrap")
    def _spread_blocks(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {**handler(self), **self.options.dump()}


class InputConfig(BaseModel):
    """The evaluation-time input transform; a field left None takes the model card's value."""

    model_config = STRICT
    crop_pct: float | None = Field(None, gt=0, le=1)
    """`input_size` / the side resized to before the centre crop (timm's crop_pct; 1: no crop)."""
    interpolation: Interpolation | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[PositiveFloat, PositiveFloat, PositiveFloat] | None = None


def _e2e_script_augment() -> list[Step]:
    """The end-to-end scripts' train transform (e.g. efficientnetv2_m.py l.26-34), in order."""
    return [
        Resize(interpolation="bilinear"),  # to the input size: 224 in the scripts
        HFlip(),
        Rotate(degrees=10),
        ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1),
        RandomResizedCrop(scale=(0.8, 1.0)),
    ]


class TrainConfig(BaseModel):
    """One fold's training recipe."""

    model_config = STRICT
    input_size: int | None = Field(224, ge=8, le=MAX_INPUT_SIZE)
    """Side of the network input; patches are resized from 128 px. None: the model's default."""
    input: InputConfig = Field(default_factory=InputConfig)
    pooling: Pooling | None = None
    """How the embedding is read (`cls`, `cls+mean`, `pooled`); None: the model card's."""
    batch_size: int = Field(8, ge=1, le=MAX_BATCH)
    drop_last: bool = False
    """Skip each epoch's final partial batch (the reference runs it)."""
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(5e-5, gt=0, le=10)
    weight_decay: float = Field(1e-5, ge=0)
    head_lr_scale: float = Field(1.0, gt=0)
    """Learning-rate multiplier for the new classification head."""
    head_init: Literal["torch", "timm"] = "torch"
    """The new head's initial weights: `torch`, nn.Linear's default (as the scripts' own
    `nn.Linear` and `reset_classifier` heads); `timm`, timm's ViT initialisation (truncated normal,
    std 0.02, zero bias), as `create_model(..., num_classes=1)` gives the UNI, UNI2-h and
    Prov-GigaPath LoRA scripts."""
    schedule: Literal["plateau", "cosine"] = "plateau"
    warmup_epochs: float = Field(0.0, ge=0)
    ema_decay: float | None = Field(None, gt=0, lt=1)
    """Keep an exponential moving average of the weights (per step) and validate and keep it."""
    plateau_factor: float = Field(0.5, gt=0, lt=1)
    plateau_patience: int = Field(3, ge=0)
    min_lr: float = Field(1e-7, ge=0)
    max_epochs: int = Field(100, ge=1)
    early_stopping_patience: int | None = Field(15, ge=1)
    epoch_size: int | None = Field(None, ge=1)
    """Samples drawn per epoch (None: the number of training samples, as the reference)."""
    balance: Literal["sampler", "loss", "none"] = "sampler"
    """`sampler`: WeightedRandomSampler as the reference; `loss`: positive-class weight in BCE."""
    loss: Literal["bce", "focal"] = "bce"
    soft_labels: bool = False
    """Train towards the share of experts who called a figure atypical (where the training data
    has votes, e.g. AMi-Br's three), not the majority's 0/1; sampling still balances the majority."""
    teacher: str | None = None
    """Distillation: a finished run trained on the same data (every fold done) whose out-of-fold
    P(atypical) the targets move towards — each training figure's probability from the teacher's
    fold model that held it out, so no target comes from a model that trained on its figure."""
    teacher_weight: float = Field(1.0, ge=0, le=1)
    """Target = weight x the teacher's probability + (1 - weight) x the usual target (the experts'
    vote share with `soft_labels`, else the 0/1 label)."""
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    mixup_alpha: float | None = Field(None, gt=0)
    """Mixup: each training batch mixed with a permutation of itself, images and targets alike, by
    one λ ~ Beta(alpha, alpha) per batch (None: off, as the paper)."""
    focal_gamma: float = Field(2.0, ge=0)
    augment: list[Step] = Field(default_factory=_e2e_script_augment)
    """Training augmentation, applied in order (see `train.augment`); [] for none."""
    threshold: Literal["fixed", "tune"] = "fixed"
    """`fixed`: 0.5 as the paper; `tune`: maximise balanced accuracy on the fold's validation set."""
    fixed_threshold: float = Field(0.5, gt=0, lt=1)
    selection: Literal["balanced_accuracy", "auroc"] = "balanced_accuracy"
    """Validation metric for early stopping and the best checkpoint."""
    precision: Precision = "fp32"
    """`fp32` (the scripts' training); `fp16`: fp16 autocast on CUDA and fp32 elsewhere, as the
    scripts' `autocast(device_type="cuda")` for probe embeddings; `bf16`; `auto`: bf16 on CUDA."""
    inference_precision: Precision | None = None
    """Validation, test and embedding precision, where it differs from training's (None: the same)."""
    test_precision: Precision | None = None
    """Test-set scoring precision where it differs from validation's (None: the same). It also
    applies to a head on cached embeddings. `paper` sets fp16 where the upstream inference
    notebooks scored under fp16 autocast (H-optimus-0/1 LoRA; the UNI, UNI2-h and Virchow probe
    heads), which is inert off CUDA; `--set test_precision=fp32` is the deliberate difference."""
    channels_last: bool = True
    eval_batch_size: int = Field(64, ge=1, le=MAX_BATCH)
    tta: bool = False
    """Also report test-time augmentation over the 8 dihedral transforms (labelled separately)."""
    seed: int = Field(42, ge=0, le=MAX_SEED)
    """Fold k trains with seed + k; numpy and scikit-learn take seeds below 2**32."""

    _testing: bool = PrivateAttr(False)

    def for_testing(self) -> TrainConfig:
        """This recipe as test sets (and new patches) are scored: `test_precision`, heads included."""
        if self.test_precision is None:
            return self
        copy = self.model_copy(update={"inference_precision": self.test_precision})
        copy._testing = True
        return copy

    @property
    def scores_heads_in_autocast(self) -> bool:
        """Whether a head on cached embeddings is scored under the inference precision too."""
        return self._testing

    @property
    def side(self) -> int:
        """The input side the recipe trains at: `input_size`, else 224 (every packaged model's)."""
        return self.input_size or 224

    @property
    def eval_precision(self) -> Precision:
        """The precision of validation, test scoring and embeddings: `inference_precision` if set."""
        return self.inference_precision or self.precision

    def transform_for(self, spec: ModelSpec) -> InputTransform:
        """The evaluation transform of `spec` under this recipe (the model card's where unset)."""
        i = self.input
        card = spec.transform_at(self.input_size or spec.input_size, i.crop_pct)
        return InputTransform(
            size=card.size,
            resize=card.resize,
            interpolation=i.interpolation or card.interpolation,
            mean=i.mean or card.mean,
            std=i.std or card.std,
        )

    def pooling_for(self, spec: ModelSpec) -> Pooling:
        return self.pooling or spec.pooling


class PresetFile(BaseModel):
    """A packaged preset: settings per mode, and (for `paper`) per model and mode."""

    model_config = STRICT
    name: str
    description: str
    defaults: dict[str, Any] = Field(default_factory=dict)
    """Settings every mode takes unless its own entry says otherwise (a new mode needs no entry)."""
    modes: dict[Mode, dict[str, Any]] = Field(default_factory=dict)
    models: dict[str, dict[Mode, dict[str, Any]]] = Field(default_factory=dict)

    def for_mode(self, mode: str) -> dict[str, Any]:
        """The preset's settings for `mode`: its defaults, then the mode's own entry."""
        return _merge(self.defaults, self.modes.get(mode, {}))  # type: ignore[call-overload]


PresetName = Literal["paper", "cpu", "cpu-best", "gpu"]
PRESETS: tuple[str, ...] = get_args(PresetName)


@cache
def preset(name: str) -> PresetFile:
    """The packaged preset `name`, validated: every mode and model entry must make a TrainConfig."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}", f"use one of {', '.join(PRESETS)}")
    try:
        file = PresetFile.model_validate(packaged_yaml("mitobench.recipes", "presets", f"{name}.yaml"))
        for mode in MODES:
            _validate(file.for_mode(mode))
            for entry in file.models.values():
                _validate(_merge(file.for_mode(mode), entry.get(mode, {})))  # type: ignore[call-overload]
    except (ValidationError, ConfigError) as exc:  # a packaged file is wrong: a bug, say where
        raise RuntimeError(f"packaged preset {name!r} is invalid: {exc}") from None
    return file


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def _validate(values: dict[str, Any]) -> TrainConfig:
    try:
        return TrainConfig.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid training settings: {first_error(exc)}",
            "correct that setting (--set KEY=VALUE or the config's `train:`; every one is in TrainConfig)",
        ) from None


def train_config(
    mode: Mode,
    preset_name: str = "paper",
    overrides: dict[str, Any] | None = None,
    model: str | None = None,
) -> TrainConfig:
    """The preset's recipe for `mode` (and `model`, where the preset has a recipe for it),
    with `overrides` (nested dicts) applied on top."""
    file = preset(preset_name)
    values = file.for_mode(mode)
    if model is not None:
        values = _merge(values, file.models.get(model.lower(), {}).get(mode, {}))
    return _validate(_merge(values, overrides or {}))
