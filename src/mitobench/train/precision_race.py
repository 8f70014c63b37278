"""`precision: auto` training on a CPU with native bf16: whether bf16 is faster than fp32 is
measured here, once per machine and network, not assumed.

The decision table (`precision.choose`) trains in bf16 on such a CPU from 160 px, as measured on
two AMD generations (Zen 5: whole runs 1.14x faster at 224 px). On an AMX-BF16 Xeon the same
recipes trained 1.25-1.34x *slower* in bf16 (docs/performance.md). So where the table says bf16,
a copy of the network races a few real training steps in both precisions at the recipe's batch
and input size, and the verdict is kept in the cache (`verdicts.kept`) per processor, torch
version, network and batch shape: the machine then trains every fold the same way.
"""

from __future__ import annotations

import copy
import hashlib
import json
import statistics
import time
from typing import Any

import torch

from mitobench import machine
from mitobench.recipes.config import TrainConfig
from mitobench.train.losses import binary_loss
from mitobench.train.precision import Choice, autocast, resolve
from mitobench.verdicts import kept, verdict_file

RACE_STEPS = 3
"""Timed steps per precision after one warm-up step each, the two alternating; medians count."""

PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}


def needs_race(cfg: TrainConfig, dev: torch.device) -> bool:
    """Whether `auto` training here is decided by a race: the table says bf16 on a CPU."""
    if cfg.precision != "auto" or dev.type != "cpu":
        return False
    return resolve(cfg.precision, dev, training=True, size=cfg.side).dtype is torch.bfloat16


def network_key(model: torch.nn.Module) -> str:
    """The network's shape and what trains (names, shapes, requires_grad), not its weights: a
    fold of the same recipe reuses the verdict, another network or mode races again."""
    shapes = [(n, list(p.shape), p.requires_grad) for n, p in model.named_parameters()]
    return hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16]


def _channels_last(model: torch.nn.Module) -> bool:
    """Whether the network was put in channels-last, as its batches then are: read from its first
    4-d weight whose layout tells (a 1x1 or single-input-channel kernel is both layouts at once)."""
    for p in model.parameters():
        if p.dim() == 4:
            nhwc = p.is_contiguous(memory_format=torch.channels_last)
            if nhwc != p.is_contiguous():
                return nhwc
    return False


def race(model: torch.nn.Module, cfg: TrainConfig, dev: torch.device) -> dict[str, Any]:
    """Images per second of forward, loss, backward and optimiser step of a copy of `model` on one
    synthetic batch of the recipe's shape, fp32 against bf16 autocast; `model`, its optimiser and
    the random state of the fit are untouched (the copy trains, torch's generator is forked)."""
    side, batch = cfg.side, cfg.batch_size
    probe = copy.deepcopy(model).to(dev).train()
    params = [p for p in probe.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-6, fused=dev.type in ("cpu", "cuda"))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        x = torch.rand(batch, 3, side, side, device=dev)
        if _channels_last(probe):
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.rand(batch, device=dev)

        def step(dtype: torch.dtype | None) -> float:
            started = time.perf_counter()
            with autocast(dtype, dev):
                logits = probe(x)
            loss = binary_loss(logits.float(), y, cfg, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return time.perf_counter() - started

        for dtype in PRECISIONS.values():  # warm-up: oneDNN kernels, allocations
            step(dtype)
        times: dict[str, list[float]] = {name: [] for name in PRECISIONS}
        for _ in range(RACE_STEPS):
            for name, dtype in PRECISIONS.items():
                times[name].append(step(dtype))
    per_second = {name: batch / statistics.median(t) for name, t in times.items()}
    return {
        "precision": faster(per_second),
        "images_per_second": {k: round(v, 2) for k, v in per_second.items()},
        "what": f"training steps of batch {batch} at {side} px, medians of {RACE_STEPS} after a warm-up",
        "machine": machine.label(),
        "network": network_key(model),
        "measured": time.time(),
    }


def faster(images_per_second: dict[str, float]) -> str:
    """The precision that trains more images per second; bf16 (the table's choice) on a tie."""
    return max(("bf16", "fp32"), key=lambda name: images_per_second[name])


def training_choice(model: torch.nn.Module, cfg: TrainConfig, dev: torch.device) -> Choice:
    """What `cfg.precision` trains `model` in here: the decision table, and where it says bf16
    under `auto` on a CPU, this machine's kept race (raced on first use)."""
    table = resolve(cfg.precision, dev, training=True, size=cfg.side)
    if not needs_race(cfg, dev):
        return table
    key = [
        machine.label(),
        torch.__version__,
        network_key(model),
        cfg.batch_size,
        cfg.side,
        _channels_last(model),
    ]
    verdict = kept(
        lambda: verdict_file("precision-race", f"train-{cfg.side}px", key),
        lambda v: v["precision"] in PRECISIONS and v["network"] == key[2],
        lambda: race(model, cfg, dev),
    )
    speeds = verdict.get("images_per_second", {})
    measured = ", ".join(f"{k} {v} img/s" for k, v in speeds.items())
    name = verdict["precision"]
    return Choice(
        cfg.precision,
        PRECISIONS[name],
        False,
        f"{table.reason}; raced on this CPU, {name} trains faster ({measured})",
    )
