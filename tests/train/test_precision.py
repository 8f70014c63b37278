"""Device policy: the precision table on faked hardware, the warning, the gradient scaler and
inference chunk sizes, each device branch run on the CPU."""

from __future__ import annotations

import warnings

import pytest
import torch

from mitobench.train import precision as P
from mitobench.train.precision import CPU_BATCH_PIXELS, Hardware, choose, inference_batch

CPU_NATIVE = Hardware("cpu", cpu_bf16=True, name="AVX-512 BF16")
CPU_EMULATED = Hardware("cpu", cpu_bf16=False, name="AMD EPYC 7763")  # Zen 3
AMPERE = Hardware("cuda", cpu_bf16=False, cuda_bf16=True, name="A100")
TURING = Hardware("cuda", cpu_bf16=False, cuda_bf16=False, name="T4")
MPS = Hardware("mps", cpu_bf16=False)

BF, HALF = torch.bfloat16, torch.float16

TABLE = [
    # hardware, requested, training, dtype, scaler, slow
    (CPU_NATIVE, "auto", True, BF, False, False),
    (CPU_NATIVE, "auto", False, BF, False, False),
    (CPU_EMULATED, "auto", True, None, False, False),
    (CPU_EMULATED, "auto", False, None, False, False),
    (CPU_EMULATED, "bf16", False, BF, False, True),  # the user asked: it runs, and warns
    (CPU_NATIVE, "bf16", True, BF, False, False),
    (CPU_NATIVE, "fp16", True, None, False, False),  # the scripts' CUDA-only autocast
    (CPU_NATIVE, "fp32", True, None, False, False),
    (AMPERE, "auto", True, BF, False, False),
    (AMPERE, "auto", False, BF, False, False),
    (TURING, "auto", True, HALF, True, False),  # fp16 needs a scaler to train
    (TURING, "auto", False, HALF, False, False),
    (TURING, "bf16", True, BF, False, True),
    (AMPERE, "fp16", True, HALF, True, False),
    (AMPERE, "fp16", False, HALF, False, False),
    (AMPERE, "fp32", True, None, False, False),
    (MPS, "auto", True, None, False, False),
    (MPS, "bf16", False, BF, False, False),
]


@pytest.mark.parametrize(("hw", "requested", "training", "dtype", "scaler", "slow"), TABLE)
def test_precision_table(
    hw: Hardware, requested: str, training: bool, dtype, scaler: bool, slow: bool
) -> None:
    choice = choose(requested, hw, training)
    assert (choice.dtype, choice.scaler, choice.slow) == (dtype, scaler, slow)
    assert choice.reason and choice.record()["used"] == choice.name


@pytest.mark.parametrize(
    ("hw", "requested", "size", "dtype"),
    [
        (CPU_NATIVE, "auto", 96, None),  # small inputs: autocast's weight casts cost more than they save
        (CPU_NATIVE, "auto", 128, None),
        (CPU_NATIVE, "auto", 160, BF),
        (CPU_NATIVE, "auto", 224, BF),
        (CPU_NATIVE, "bf16", 96, BF),  # asked for: as asked
        (CPU_EMULATED, "auto", 224, None),
        (AMPERE, "auto", 96, BF),  # a GPU: no size rule
    ],
)
def test_cpu_training_precision_follows_the_input_size(
    hw: Hardware, requested: str, size: int, dtype
) -> None:
    """Training on a CPU with native bf16: `auto` takes bf16 from 160 px up (measured in the loop:
    slower than fp32 at 96 px, about equal at 128, 2x faster at 224); inference has no such rule."""
    assert choose(requested, hw, training=True, size=size).dtype == dtype
    assert choose(requested, hw, training=False, size=size).dtype == (None if hw is CPU_EMULATED else BF)


def test_explicit_bf16_on_an_emulating_cpu_warns_once_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(P, "hardware", lambda dev: CPU_EMULATED)
    monkeypatch.setattr(P, "_warned", set())
    cpu = torch.device("cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert P.resolve("bf16", cpu).dtype == torch.bfloat16
        P.resolve("bf16", cpu, training=True)
        assert P.resolve("auto", cpu).dtype is None
    assert len(caught) == 1
    text = str(caught[0].message)
    assert issubclass(caught[0].category, P.PrecisionWarning)
    assert "slower" in text and "precision=auto" in text


def test_auto_follows_this_machines_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu = torch.device("cpu")
    monkeypatch.setattr(P, "hardware", lambda dev: CPU_NATIVE)
    assert P.autocast_dtype("auto", cpu) == torch.bfloat16
    monkeypatch.setattr(P, "hardware", lambda dev: CPU_EMULATED)
    assert P.autocast_dtype("auto", cpu) is None


def test_a_real_run_records_the_choice_and_why(trained_run) -> None:
    import json

    env = json.loads((trained_run / "run.json").read_text())["environment"]
    assert env["precision"]["train"]["requested"] == "fp32"
    assert env["precision"]["train"]["reason"]
    assert env["cpu"]["bf16_native"] in (True, False) and env["machine"]
    fit = json.loads((trained_run / "fold_0" / "fit.json").read_text())
    assert fit["precision"]["inference"]["used"] == "fp32"


def _model_and_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    return model, torch.randn(16, 6), torch.randint(0, 2, (16, 1)).float()


def _train(scaled: bool, steps: int = 3, poison: int | None = None) -> list[torch.Tensor]:
    from mitobench.train.loop import _step

    model, x, y = _model_and_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = torch.amp.GradScaler("cpu", enabled=scaled, init_scale=2.0**10)
    for s in range(steps):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        if s == poison:
            loss = loss * float("inf")  # an overflowing fp16 step
        _step(loss, opt, scaler)
    return [p.detach().clone() for p in model.parameters()]


def test_the_gradient_scaler_branch_trains_as_the_plain_one() -> None:
    """The fp16-on-CUDA branch (scaled loss, unscaled step) run on the CPU against the plain step."""
    for a, b in zip(_train(scaled=True), _train(scaled=False), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_the_scaler_skips_a_step_whose_gradients_overflow() -> None:
    skipped = _train(scaled=True, steps=3, poison=1)
    two_steps = _train(scaled=True, steps=2)
    for a, b in zip(skipped, two_steps, strict=True):
        torch.testing.assert_close(a, b)


def test_cpu_chunks_are_capped_by_pixels_and_gpu_chunks_are_not() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert inference_batch(64, 224, cpu) == 32
    assert inference_batch(128, 160, cpu) == CPU_BATCH_PIXELS // (160 * 160) == 62
    assert inference_batch(16, 224, cpu) == 16  # never more than asked
    assert inference_batch(64, 4096, cpu) == 1  # never zero
    assert inference_batch(256, 224, gpu) == 256


def test_inference_can_run_at_another_precision_than_training(monkeypatch: pytest.MonkeyPatch) -> None:
    from mitobench.recipes.config import train_config
    from mitobench.train.loop import _compute_dtype
    from mitobench.train.model import Classifier

    monkeypatch.setattr(P, "hardware", lambda dev: CPU_NATIVE)
    cfg = train_config("e2e", "cpu", {"precision": "fp32", "inference_precision": "bf16"})
    model = Classifier(torch.nn.Identity(), 4)  # an image model (a head on embeddings stays fp32)
    cpu = torch.device("cpu")
    assert _compute_dtype(model, cfg, cpu) is None
    assert _compute_dtype(model, cfg, cpu, inference=True) == torch.bfloat16
    assert (
        _compute_dtype(model, cfg.model_copy(update={"inference_precision": None}), cpu, inference=True)
        is None
    )


def test_every_packaged_preset_but_paper_defaults_to_auto() -> None:
    from mitobench.recipes.config import MODES, PRESETS, train_config

    for preset in PRESETS:
        for mode in MODES:
            cfg = train_config(mode, preset)
            if preset == "paper":
                assert cfg.precision in ("fp32", "fp16")
            else:
                assert cfg.precision == "auto" and cfg.inference_precision in (None, "auto"), (preset, mode)
