"""The CLI's typed choices are read from the library's registries: `--help` lists exactly what
they hold, a value outside them is refused, and a registry entry added later reaches the CLI."""

from __future__ import annotations

import importlib
import re
from typing import get_args

import pytest

import mitobench.cli as cli_module
from mitobench.benchmark.executors import Executor
from mitobench.data.splits import SPLITS
from mitobench.recipes.config import PRESETS, Mode
from mitobench.train.modes import MODES


def _listed(help_text: str, option: str) -> list[str]:
    flat = " ".join(help_text.split())
    match = re.search(rf"{option} <([a-z0-9|-]+)>", flat)
    assert match, flat
    return match.group(1).split("|")


@pytest.mark.parametrize(
    ("command", "option", "registry"),
    [
        ("train", "--mode", list(MODES)),
        ("train", "--preset", list(PRESETS)),
        ("train", "--split", list(SPLITS)),
        ("run", "--executor", [e.value for e in Executor]),
    ],
)
def test_help_lists_exactly_the_registry(command, option, registry, cli, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    code, out, _ = cli(command, "--help")
    assert code == 0 and _listed(out, option) == registry


def test_a_value_outside_the_registry_is_refused_naming_the_choices(cli) -> None:
    code, _, err = cli("train", "--model", "resnet10t", "--mode", "nope")
    words = " ".join(err.replace("│", " ").split())
    assert code == 2 and "'nope' is not one of 'e2e', 'probe', 'lora'" in words, err


def test_the_modes_registry_and_the_settings_literal_agree() -> None:
    """A mode's trainer (train/modes) and the name settings accept (recipes) are one list."""
    assert list(MODES) == list(get_args(Mode))


def test_a_preset_added_to_the_registry_reaches_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    import mitobench.recipes.config as recipes

    monkeypatch.setattr(recipes, "PRESETS", (*recipes.PRESETS, "my-lab"))
    reloaded = importlib.reload(cli_module)
    try:
        assert "my-lab" in [c.value for c in reloaded.PresetChoice]
    finally:
        monkeypatch.undo()
        importlib.reload(cli_module)
