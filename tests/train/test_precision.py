"""Device policy: inference chunk sizes."""

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
