"""`precision: auto` training on a CPU with native bf16: fp32 and bf16 race once per machine and
network; the race runs here for real on a small network, the rule on faked hardware, and a fit
trains in the verdict's precision exactly as one told that precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mitobench import verdicts
from mitobench.recipes.config import train_config
from mitobench.runs.rundir import FoldDir
from mitobench.train import loop
from mitobench.train import precision as P
from mitobench.train import precision_race as R
from mitobench.train.model import Classifier, trainable_state

NATIVE = P.Hardware("cpu", cpu_bf16=True, name="AMX-BF16")
EMULATED = P.Hardware("cpu", cpu_bf16=False, name="AMD EPYC 7763")
CPU = torch.device("cpu")


def _network() -> Classifier:
    torch.manual_seed(0)
    body = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Dropout(0.5),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    return Classifier(body, 8)


def _cfg(**settings):
    return train_config("e2e", "cpu-best", {"batch_size": 4, **settings})


def _kept_verdict(precision: str, calls: list[str]):
    def race(model, cfg, dev):
        calls.append(precision)
        return {"precision": precision, "images_per_second": {"fp32": 1.0, "bf16": 2.0},
                "network": R.network_key(model)}  # fmt: skip

    return race


@pytest.mark.parametrize(
    ("speeds", "winner"),
    [({"fp32": 20.0, "bf16": 16.0}, "fp32"), ({"fp32": 13.0, "bf16": 25.0}, "bf16"),
     ({"fp32": 18.0, "bf16": 18.0}, "bf16")],
)  # fmt: skip
def test_the_faster_precision_wins_and_bf16_a_tie(speeds, winner) -> None:
    assert R.faster(speeds) == winner


def test_the_race_times_both_precisions_on_a_copy_and_leaves_the_fit_untouched() -> None:
    """A real race on this CPU (bf16 emulated or not: the network is small): both speeds measured,
    the winner named; the model's weights and torch's random state are as before."""
    model = _network().to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in trainable_state(model).items()}
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    verdict = R.race(model, _cfg(input_size=24), CPU)
    assert torch.equal(torch.get_rng_state(), rng)  # the fit's draws are not shifted
    after = trainable_state(model)
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm statistics included
    speeds = verdict["images_per_second"]
    assert set(speeds) == {"fp32", "bf16"} and all(v > 0 for v in speeds.values())
    assert verdict["precision"] == R.faster(speeds)
    assert verdict["network"] == R.network_key(model) and "batch 4 at 24 px" in verdict["what"]


def test_channels_last_is_read_from_the_network() -> None:
    model = _network()
    assert not R._channels_last(model)
    assert R._channels_last(model.to(memory_format=torch.channels_last))


def test_channels_last_is_read_past_kernels_that_are_both_layouts() -> None:
    """A 1x1 stem and a depthwise conv are contiguous in both layouts; the 3x3 after them tells."""
    torch.manual_seed(0)
    body = nn.Sequential(
        nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 3, padding=1),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )  # fmt: skip
    assert not R._channels_last(body)
    assert R._channels_last(body.to(memory_format=torch.channels_last))
    assert not R._channels_last(nn.Sequential(nn.Conv2d(3, 8, 1)).to(memory_format=torch.channels_last))


@pytest.mark.parametrize(
    ("hw", "settings", "raced", "dtype"),
    [
        (NATIVE, {}, True, None),  # the table's bf16 (224 px), and the race says fp32
        (NATIVE, {"input_size": 96}, False, None),  # the table's fp32 below 160 px
        (NATIVE, {"precision": "bf16"}, False, torch.bfloat16),  # asked for: no race
        (NATIVE, {"precision": "fp32"}, False, None),
        (EMULATED, {}, False, None),  # no native bf16: fp32, no race
    ],
)
def test_only_auto_where_the_table_says_bf16_on_a_cpu_races(monkeypatch, hw, settings, raced, dtype) -> None:
    monkeypatch.setattr(P, "hardware", lambda dev: hw)
    calls: list[str] = []
    monkeypatch.setattr(R, "race", _kept_verdict("fp32", calls))
    choice = R.training_choice(_network(), _cfg(**settings), CPU)
    assert choice.dtype is dtype and bool(calls) is raced
    assert ("raced on this CPU, fp32 trains faster" in choice.reason) is raced


def test_the_verdict_is_kept_per_network_and_batch_shape(monkeypatch) -> None:
    monkeypatch.setattr(P, "hardware", lambda dev: NATIVE)
    calls: list[str] = []
    monkeypatch.setattr(R, "race", _kept_verdict("fp32", calls))
    cfg = _cfg()
    assert R.training_choice(_network(), cfg, CPU).dtype is None
    assert R.training_choice(_network(), cfg, CPU).dtype is None  # another fold, the same verdict
    assert len(calls) == 1
    R.training_choice(_network(), _cfg(batch_size=8), CPU)
    wider = Classifier(nn.Sequential(nn.Conv2d(3, 16, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()), 16)
    R.training_choice(wider, cfg, CPU)
    assert len(calls) == 3


@pytest.mark.parametrize("kept", ["{not json", '{"precision": "fp8", "network": "x"}', "[]"])
def test_an_unreadable_verdict_is_raced_again_and_replaced(monkeypatch, kept) -> None:
    monkeypatch.setattr(P, "hardware", lambda dev: NATIVE)
    seen: list[Path] = []
    real = verdicts.verdict_file

    def where(kind, name, key):
        seen.append(real(kind, name, key))
        return seen[-1]

    monkeypatch.setattr(R, "verdict_file", where)
    monkeypatch.setattr(R, "race", _kept_verdict("bf16", []))
    model = _network()
    R.training_choice(model, _cfg(), CPU)
    seen[-1].write_text(kept)
    assert R.training_choice(model, _cfg(), CPU).dtype is torch.bfloat16
    assert json.loads(seen[-1].read_text())["precision"] == "bf16"


class _Images:
    """Eight-pixel images with labels, drawn as the loop draws batches."""

    def __init__(self, n: int) -> None:
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(n, 3, 8, 8, generator=g).contiguous(memory_format=torch.channels_last)
        self.labels = (np.arange(n) % 2).astype(np.int64)
        self.targets = None

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, idx, g=None, dihedral_code=None):
        return self.x[torch.as_tensor(np.asarray(idx))]


@pytest.mark.parametrize("verdict", ["fp32", "bf16"])
def test_a_fit_under_auto_trains_as_one_told_the_raced_precision(tmp_path, monkeypatch, verdict) -> None:
    """Each branch against the other: `auto` with a kept verdict gives the same weights as the
    verdict's precision set by hand, and fit.json says it was raced."""
    monkeypatch.setattr(P, "hardware", lambda dev: NATIVE)
    monkeypatch.setattr(R, "race", _kept_verdict(verdict, []))
    train, val = _Images(32), _Images(8)
    weights, records = [], []
    for name, precision in (("auto", "auto"), ("set", verdict)):
        cfg = _cfg(precision=precision, inference_precision="fp32", max_epochs=2, input_size=224)
        model = _network().to(memory_format=torch.channels_last)
        result = loop.fit(model, loop.FitContext(train, val, cfg, FoldDir(tmp_path / name, 0), CPU))
        weights.append(trainable_state(model))
        records.append(result.precision["train"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert records[0]["used"] == records[1]["used"] == verdict
    assert "raced on this CPU" in records[0]["reason"] and "raced" not in records[1]["reason"]


def test_run_json_says_the_training_precision_is_raced_not_which(monkeypatch) -> None:
    """Before the first fit nothing is raced yet: run.json must not name bf16 for a run that may
    train in fp32 (fit.json names the one used)."""
    from mitobench.train.run import environment

    monkeypatch.setattr(P, "hardware", lambda dev: NATIVE)
    train = environment(_cfg())["precision"]["train"]
    assert train["used"] == "raced: bf16 or fp32" and "fit.json" in train["reason"]
    monkeypatch.setattr(P, "hardware", lambda dev: EMULATED)
    assert environment(_cfg())["precision"]["train"]["used"] == "fp32"
