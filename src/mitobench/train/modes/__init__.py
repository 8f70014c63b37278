"""Training modes, registered by name like the models: adding one is one file and one line here."""

from __future__ import annotations

from mitobench.errors import ConfigError
from mitobench.recipes.config import ModeOptions
from mitobench.train.modes.base import TrainingMode
from mitobench.train.modes.e2e import EndToEnd
from mitobench.train.modes.lora import Lora
from mitobench.train.modes.probe import Probe

MODES: dict[str, TrainingMode] = {m.name: m for m in (EndToEnd(), Probe(), Lora())}


def get_mode(name: str) -> TrainingMode:
    """The registered mode `name`."""
    mode = MODES.get(name)
    if mode is None:
        raise ConfigError(f"unknown mode {name!r}", f"use one of {', '.join(MODES)}")
    return mode


__all__ = ["MODES", "ModeOptions", "TrainingMode", "get_mode"]
