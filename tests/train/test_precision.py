"""Device policy: inference chunk sizes and autocast dtypes, each device branch run on the CPU."""

from __future__ import annotations

import torch

from mitobench.train.precision import CPU_BATCH_PIXELS, inference_batch


def test_cpu_chunks_are_capped_by_pixels_and_gpu_chunks_are_not() -> None:
    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    assert inference_batch(64, 224, cpu) == 32
    assert inference_batch(128, 160, cpu) == CPU_BATCH_PIXELS // (160 * 160) == 62
    assert inference_batch(16, 224, cpu) == 16  # never more than asked
    assert inference_batch(64, 4096, cpu) == 1  # never zero
    assert inference_batch(256, 224, gpu) == 256


def test_autocast_dtype_per_precision_and_device() -> None:
    from mitobench.train.precision import autocast_dtype

    cpu, gpu = torch.device("cpu"), torch.device("cuda")
    expected = {
        "fp32": (None, None),
        "fp16": (None, torch.float16),  # the scripts' CUDA-only autocast: inert on a CPU
        "bf16": (torch.bfloat16, torch.bfloat16),
        "auto": (None, torch.bfloat16),
    }
    for precision, (on_cpu, on_gpu) in expected.items():
        assert autocast_dtype(precision, cpu) == on_cpu
        assert autocast_dtype(precision, gpu) == on_gpu


def test_inference_can_run_at_another_precision_than_training() -> None:
    from mitobench.train.config import train_config
    from mitobench.train.loop import _compute_dtype
    from mitobench.train.model import Classifier

    cfg = train_config("e2e", "cpu", {"precision": "fp32", "inference_precision": "bf16"})
    model = Classifier(torch.nn.Identity(), 4)  # an image model (a head on embeddings stays fp32)
    cpu = torch.device("cpu")
    assert _compute_dtype(model, cfg, cpu) is None
    assert _compute_dtype(model, cfg, cpu, inference=True) == torch.bfloat16
    assert (
        _compute_dtype(model, cfg.model_copy(update={"inference_precision": None}), cpu, inference=True)
        is None
    )
