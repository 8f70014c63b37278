"""The CLI's typed choices (listed by --help) are the library's registries, one for one."""

from __future__ import annotations

from typing import get_args

import mitobench.cli as cli_module
from mitobench.benchmark.executors import Executor
from mitobench.data.splits import SPLITS
from mitobench.recipes.config import PRESETS, Mode
from mitobench.train.modes import MODES


def test_choices_equal_the_registries() -> None:
    assert [c.value for c in cli_module.ModeChoice] == list(MODES) == list(get_args(Mode))
    assert [c.value for c in cli_module.PresetChoice] == list(PRESETS)
    assert [c.value for c in cli_module.ExecutorChoice] == [e.value for e in Executor]
    assert [c.value for c in cli_module.SplitChoice] == list(SPLITS)


def test_help_lists_the_choices(cli) -> None:
    code, out, _ = cli("train", "--help")
    assert code == 0
    for word in ("e2e", "probe", "lora", "paper", "cpu", "gpu"):
        assert word in out
