"""PyTorch fp32 vs ONNX Runtime for one EfficientNet-Lite0 fold model (one-logit head), batch 64.

Random-initialised weights (speed does not depend on them); two warm-up calls, median of five;
every core of this process. Prints the processor first. Needs the `onnx` extra.
Usage: python benchmarks/onnx_speed.py [--sides 224 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import timm
import torch

from mitobench.machine import label

BATCH = 64


def _rate(run: Callable[[], object]) -> float:
    for _ in range(2):
        run()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return BATCH / statistics.median(times)


def measure(side: int, folder: Path) -> dict[str, float]:
    model = timm.create_model("tf_efficientnet_lite0", num_classes=1).eval()
    x = torch.randn(BATCH, 3, side, side)
    program = torch.onnx.export(
        model,
        (x,),
        input_names=["pixels"],
        output_names=["logit"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch", max=4096)}},
        dynamo=True,
        verbose=False,
    )
    assert program is not None
    path = folder / f"lite0_{side}.onnx"
    program.save(str(path))
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    channels_last = model.to(memory_format=torch.channels_last)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    pixels = x.numpy()

    def torch_fp32() -> object:
        with torch.inference_mode():
            return channels_last(x_cl)

    return {
        "torch_fp32": _rate(torch_fp32),
        "onnxruntime": _rate(lambda: session.run(None, {"pixels": pixels})),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sides", type=int, nargs="+", default=[224, 128])
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    print(label())
    with tempfile.TemporaryDirectory() as tmp:
        for side in args.sides:
            r = measure(side, Path(tmp))
            ratio = r["onnxruntime"] / r["torch_fp32"]
            print(
                f"{side} px: PyTorch fp32 {r['torch_fp32']:.1f}, ONNX Runtime {r['onnxruntime']:.1f}"
                f" patches/s ({ratio:.2f}x)"
            )


if __name__ == "__main__":
    main()
