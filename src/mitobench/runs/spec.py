"""What one run trains: its settings as saved in `run.json`, validated, and read back."""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationError

from mitobench.config_file import first_error
from mitobench.data.registry import DATASETS, EVAL_SETS
from mitobench.data.splits import N_FOLDS, SplitName
from mitobench.errors import ConfigError
from mitobench.recipes.config import (
    MODE_OPTIONS,
    Mode,
    PresetName,
    TrainConfig,
    WithModeOptions,
    train_config,
)
from mitobench.runs.rundir import DEFAULT_TRAIN_DATA, RunDir


class RunSpec(WithModeOptions):
    """What to run; everything else comes from the preset. Saved as `run.json` (with each mode's
    settings block, `lora:` and `probe:`, at the top level)."""

    model: str
    mode: Mode = "e2e"
    preset: PresetName = "paper"
    train_data: str = DEFAULT_TRAIN_DATA
    """Named split or a labelled folder / CSV (`group` column: slide-grouped folds; `fold`: yours)."""
    split: SplitName = "paper"
    """`paper`: the reference's folds on every scikit-learn; `sklearn`: the installed release's."""
    folds: list[int] = Field(default_factory=lambda: list(range(N_FOLDS)))
    eval_sets: list[str] = Field(default_factory=lambda: list(EVAL_SETS))
    allow_overlap: bool = False
    """Evaluate on a set that shares images with the training data (refused otherwise; recorded)."""
    all_figures: bool = False
    """Train one model on every training figure, holding none out (its folder is `fold_0`): the
    final model of a recipe chosen on validation folds. No validation set, so a fixed number of
    epochs, the last (EMA) weights and `threshold: fixed` at a `fixed_threshold` chosen on held-out
    predictions beforehand; it makes no out-of-fold predictions, so it can teach no student."""
    weights: str | None = None
    """Local weight file or folder (hub layout); None uses the model's default source."""
    train: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the preset's training settings (see TrainConfig)."""

    def resolved(self) -> TrainConfig:
        return train_config(self.mode, self.preset, self.train, model=self.model)

    @property
    def uses_released_data(self) -> bool:
        """Whether it trains or evaluates on a released dataset (one `data download` fetches)."""
        return any(k.split("/")[0] in DATASETS for k in [self.train_data, *self.eval_sets])


def assemble_spec(
    config: dict[str, Any], options: dict[str, Any], overrides: dict[str, Any] | None = None
) -> RunSpec:
    """A run's settings from a config file's values, then command-line `options` (None: not
    given) over them, then `--set` `overrides`: `lora.*` and `probe.*` set those blocks, the
    rest the training recipe."""
    values = {**config, **{k: v for k, v in options.items() if v is not None}}
    overrides = dict(overrides or {})
    for section in MODE_OPTIONS:  # `--set lora.r=16` sets the run's LoRA, not a training knob
        if section in overrides:
            values[section] = {**values.get(section, {}), **overrides.pop(section)}
    if overrides:
        values["train"] = {**values.get("train", {}), **overrides}
    if "model" not in values:
        raise ConfigError(
            "no model given", "pass --model NAME (see `mitobench models list`) or --config FILE"
        )
    return parse_spec(values)


def parse_spec(values: dict[str, Any]) -> RunSpec:
    """A validated RunSpec (its training settings resolved once to check them), or a ConfigError."""
    try:
        spec = RunSpec.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid run settings: {first_error(exc)}", "fix the config or command-line options"
        ) from None
    if not spec.folds:
        raise ConfigError("no fold selected", "name folds, e.g. --folds 0,1 (or leave it out for all)")
    # the paper's split has folds 0..4; a user's fold column may have more (checked against it later)
    top = N_FOLDS if spec.train_data == DEFAULT_TRAIN_DATA else None
    bad = [k for k in spec.folds if k < 0 or (top is not None and k >= top)]
    if bad:
        raise ConfigError(f"fold {bad[0]} does not exist", f"folds are 0..{N_FOLDS - 1}")
    cfg = spec.resolved()
    if spec.all_figures:
        _check_all_figures(spec, cfg)
    return spec


def _check_all_figures(spec: RunSpec, cfg: TrainConfig) -> None:
    """An all-figures model has nothing held out: no fold choice, no tuned threshold, no early stop."""
    if spec.folds != [0]:
        raise ConfigError("all_figures trains one model (kept as fold 0)", "set folds: [0] (--folds 0)")
    needs_val = [
        name
        for name, bad in (
            ("threshold: tune", cfg.threshold == "tune"),
            ("early_stopping_patience", cfg.early_stopping_patience is not None),
            ("schedule: plateau", cfg.schedule == "plateau"),
        )
        if bad
    ]
    if needs_val:
        raise ConfigError(
            f"all_figures holds no validation set, which {needs_val[0]} needs",
            "set threshold=fixed with fixed_threshold=T (chosen on held-out predictions), "
            "early_stopping_patience=null and a schedule other than plateau",
        )


def saved_settings(spec: dict[str, Any], cfg: dict[str, Any], where: str) -> tuple[RunSpec, TrainConfig]:
    """A saved run's settings; ones an older mitobench wrote that no longer validate are a user error."""
    try:
        return RunSpec.model_validate(spec), TrainConfig.model_validate(cfg)
    except ValidationError as exc:
        # settings this version does not know come from a newer one; missing or changed ones from an older
        newer = any(e["type"] == "extra_forbidden" for e in exc.errors())
        raise ConfigError(
            f"{where} was written by {'a newer' if newer else 'an older'} mitobench ({first_error(exc)})",
            "upgrade mitobench to read it"
            if newer
            else "retrain it with this version, or use the mitobench version that made it",
        ) from None


def load_run_spec(run: RunDir) -> tuple[RunSpec, TrainConfig]:
    """The settings a run was trained with."""
    if not run.has_record():
        raise ConfigError(
            f"{run.path} is not a mitobench run (no run.json)", "pass a directory made by `mitobench train`"
        )
    record = run.read_record()
    return saved_settings(record["spec"], record["train_config"], str(run.record_file))
