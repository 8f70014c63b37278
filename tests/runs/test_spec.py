"""A run's settings (`RunSpec`) as the library assembles and validates them."""

from __future__ import annotations

import pytest

from mitobench.recipes.config import LoraConfig, ProbeConfig


def test_a_run_is_assembled_config_then_options_then_overrides() -> None:
    """The library assembles a run's settings (the CLI only parses): options override the config
    file, `--set lora.*`/`probe.*` reach those blocks and the rest the recipe."""
    from mitobench.errors import ConfigError
    from mitobench.runs.spec import assemble_spec

    config = {"model": "resnet10t", "mode": "probe", "train": {"max_epochs": 3}, "lora": {"r": 4}}
    spec = assemble_spec(
        config,
        {"mode": "lora", "preset": None, "folds": [0, 2]},
        {"lora": {"alpha": 32}, "probe": {"method": "torch"}, "lr": 1e-4},
    )
    assert spec.mode == "lora" and spec.preset == "paper" and spec.folds == [0, 2]
    lora, probe = spec.options.of(LoraConfig), spec.options.of(ProbeConfig)
    assert (lora.r, lora.alpha, probe.method) == (4, 32, "torch")
    assert spec.train == {"max_epochs": 3, "lr": 1e-4}
    assert spec.uses_released_data  # amibr/train by default
    with pytest.raises(ConfigError, match="no model given"):
        assemble_spec({}, {"mode": "e2e"})


def test_a_modes_settings_block_is_declared_once(monkeypatch) -> None:
    """A mode's settings are one entry in MODE_OPTIONS: run specs, grids, `--set` and the saved
    record all carry the new block without naming it (the mode reads it with `options.of`)."""
    from pydantic import BaseModel

    from mitobench.benchmark.grid import GridConfig
    from mitobench.errors import ConfigError
    from mitobench.recipes import config
    from mitobench.runs.spec import RunSpec, assemble_spec

    class Distil(BaseModel):
        temperature: float = 2.0

    monkeypatch.setitem(config.MODE_OPTIONS, "distil", Distil)
    spec = assemble_spec({"model": "resnet10t"}, {}, {"distil": {"temperature": 4.0}})
    assert spec.options.of(Distil).temperature == 4.0
    saved = spec.model_dump()
    assert saved["distil"] == {"temperature": 4.0} and saved["lora"]["r"] == 8
    assert RunSpec.model_validate(saved).options.of(Distil).temperature == 4.0
    grid = GridConfig.model_validate({"runs": [{"model": "resnet10t"}], "distil": {"temperature": 3.0}})
    assert grid.run_specs()[0].options.of(Distil).temperature == 3.0
    with pytest.raises(ConfigError, match=r"distil\.temperature"):
        assemble_spec({"model": "resnet10t"}, {}, {"distil": {"temperature": "hot"}})


@pytest.mark.parametrize(
    ("extra", "train", "message"),
    [
        ({"folds": [0, 1]}, {"threshold": "fixed"}, "trains one model"),
        ({"folds": [0]}, {"threshold": "tune"}, "which threshold: tune needs"),
        ({"folds": [0]}, {"threshold": "fixed", "early_stopping_patience": 3}, "early_stopping_patience"),
        ({"folds": [0]}, {"threshold": "fixed", "schedule": "plateau"}, "schedule: plateau"),
    ],
)
def test_an_all_figures_run_refuses_what_needs_a_validation_set(extra, train, message) -> None:
    from mitobench.errors import ConfigError
    from mitobench.runs.spec import parse_spec

    values = {"model": "resnet10t", "preset": "cpu", "all_figures": True, "train": train, **extra}
    with pytest.raises(ConfigError, match=message):
        parse_spec(values)
    ok = parse_spec({**values, "folds": [0], "train": {"threshold": "fixed", "fixed_threshold": 0.4}})
    assert ok.all_figures and ok.resolved().fixed_threshold == 0.4
