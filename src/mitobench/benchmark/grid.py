"""A benchmark config: a grid of (model × mode × fold) jobs sharing a preset and data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from mitobench.config_file import STRICT, first_error, line_of, packaged_names, packaged_yaml, read_yaml
from mitobench.data.registry import EVAL_SETS
from mitobench.data.splits import N_FOLDS
from mitobench.errors import ConfigError
from mitobench.recipes.config import Mode, WithModeOptions
from mitobench.runs.rundir import DEFAULT_TRAIN_DATA
from mitobench.runs.spec import RunSpec, parse_spec


class GridEntry(BaseModel):
    model_config = STRICT
    model: str
    modes: list[Mode] = Field(default_factory=lambda: list[Mode](["e2e"]))
    train: dict[str, Any] = Field(default_factory=dict)
    """Overrides for this model only (on top of the grid's `train`)."""


class GridConfig(WithModeOptions):
    """The YAML of `mitobench run`; every field but `runs` has a default that follows the paper.
    Each mode's settings block (`lora:`, `probe:`) applies to every run of that mode."""

    name: str = "benchmark"
    preset: str = "paper"
    train_data: str = DEFAULT_TRAIN_DATA
    """Named split or a labelled folder / CSV every run of the grid trains on."""
    folds: list[int] = Field(default_factory=lambda: list(range(N_FOLDS)))
    eval_sets: list[str] = Field(default_factory=lambda: list(EVAL_SETS))
    runs: list[GridEntry] = Field(min_length=1)
    train: dict[str, Any] = Field(default_factory=dict)
    weights: dict[str, str] = Field(default_factory=dict)
    """Model name -> local weight file or folder (offline clusters)."""
    resources: dict[str, float] = Field(default_factory=lambda: {"num_cpus": 1.0, "num_gpus": 0.0})
    """What one job needs from a Ray worker."""

    @model_validator(mode="after")
    def _weights_name_run_models(self) -> GridConfig:
        """A `weights:` entry for a model no run trains is a typo that would silently go unused."""
        models = {e.model for e in self.runs}
        stray = sorted(set(self.weights) - models)
        if stray:
            raise ValueError(
                f"weights: {stray[0]!r} is not a model of this grid's runs ({', '.join(sorted(models))})"
            )
        return self

    def run_specs(self) -> list[RunSpec]:
        """One RunSpec per (model, mode), in the config's order."""
        specs = []
        for entry in self.runs:
            for mode in entry.modes:
                specs.append(
                    parse_spec(
                        {
                            "model": entry.model,
                            "mode": mode,
                            "preset": self.preset,
                            "train_data": self.train_data,
                            "folds": self.folds,
                            "eval_sets": self.eval_sets,
                            "weights": self.weights.get(entry.model),
                            "train": {**self.train, **entry.train},
                            **self.options.dump(),
                        }
                    )
                )
        return specs


def packaged_configs() -> list[str]:
    """Names of the configs shipped with mitobench (`paper`, `cpu`, `quick`)."""
    return packaged_names("mitobench", "configs")


def load_grid(path_or_name: str) -> GridConfig:
    """A config file, or the name of a packaged config (e.g. `quick`)."""
    path = Path(path_or_name)
    if not path.is_file() and path_or_name in packaged_configs():
        values = packaged_yaml("mitobench", "configs", f"{path_or_name}.yaml")
    elif not path.is_file():
        raise ConfigError(
            f"{path_or_name}: no such config file or packaged config",
            f"pass a YAML file, or one of: {', '.join(packaged_configs())}",
        )
    else:
        values = read_yaml(path)
    try:
        return GridConfig.model_validate(values)
    except ValidationError as exc:
        loc = exc.errors()[0]["loc"]
        key = loc[0] if loc else "weights"  # a model-level check is about `weights`
        line = line_of(path.read_text(), key) if path.is_file() else None
        where = f"{path_or_name}, line {line}" if line else path_or_name
        raise ConfigError(f"{where}: {first_error(exc)}", "fix the config (see configs/)") from None
