"""A run's settings (`RunSpec`) as the library assembles and validates them."""

from __future__ import annotations

import pytest


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
    assert (spec.lora.r, spec.lora.alpha, spec.probe.method) == (4, 32, "torch")
    assert spec.train == {"max_epochs": 3, "lr": 1e-4}
    assert spec.uses_released_data  # amibr/train by default
    with pytest.raises(ConfigError, match="no model given"):
        assemble_spec({}, {"mode": "e2e"})
