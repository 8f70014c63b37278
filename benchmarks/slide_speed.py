"""Is classifying detections on a slide limited by the network, not by reading the slide?

    python benchmarks/slide_speed.py --data-root ../shared/data             # 5,000 detections
    python benchmarks/slide_speed.py --data-root ../shared/data --quick     # a smoke test

Builds a tiled, pyramidal TIFF from real AMi-Br patches, trains a small EfficientNet-Lite0 run
(the `cpu` preset at 160 px, two folds, a few steps: the weights do not matter for speed), then
times, on the same detections: (a) the fold ensemble on the patches already decoded in memory,
as `predict` runs it; (b) `mitobench slide`'s pipeline, reading patches from the slide while the
network runs. Medians of --repeat interleaved rounds; writes the table as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image


def build_slide(data_root: Path, path: Path, grid: int) -> tuple[int, int]:
    """A grid x grid mosaic of real patches as a 2-level tiled TIFF at 0.25 µm/px; its size."""
    import tifffile

    paths = sorted((data_root / "AMi-Br" / "Normal").glob("*.png"))[: grid * grid]
    canvas = np.zeros((grid * 128, grid * 128, 3), np.uint8)
    for i, p in enumerate(paths):
        r, c = divmod(i, grid)
        canvas[r * 128 : (r + 1) * 128, c * 128 : (c + 1) * 128] = np.asarray(Image.open(p).convert("RGB"))
    with tifffile.TiffWriter(path) as tw:
        for level in range(2):
            data = canvas if level == 0 else np.asarray(Image.fromarray(canvas).reduce(2))
            res = 1e4 / (0.25 * 2**level)
            tw.write(data, tile=(256, 256), photometric="rgb", compression="zlib", resolution=(res, res),
                     resolutionunit="CENTIMETER", subfiletype=1 if level else 0)  # fmt: skip
    return canvas.shape[1], canvas.shape[0]


def train_model(data_root: Path, run: Path, folds: int, steps: int) -> None:
    from mitobench.runs.spec import parse_spec
    from mitobench.train.run import train_run

    settings = {"max_epochs": 1, "epoch_size": 32 * steps, "eval_batch_size": 128}
    spec = parse_spec({"model": "tf_efficientnet_lite0", "mode": "e2e", "preset": "cpu",
                       "folds": list(range(folds)), "eval_sets": [], "train": settings})  # fmt: skip
    train_run(spec, run, data_root)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--detections", type=int, default=5000)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results-slide.json"))
    args = p.parse_args(argv)
    if args.quick:
        args.detections, args.folds, args.repeat = 256, 1, 1

    from mitobench.inference.predictor import from_run
    from mitobench.slides.classify import classify_detections
    from mitobench.slides.reader import SlideReader

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        width, height = build_slide(args.data_root, work / "slide.tif", grid=32)
        train_model(args.data_root, work / "run", args.folds, steps=2 if args.quick else 4)
        predictor = from_run(work / "run")
        reader = SlideReader(work / "slide.tif")
        rng = np.random.default_rng(0)
        n = args.detections
        xs, ys = rng.uniform(64, width - 64, n), rng.uniform(64, height - 64, n)
        dets = pd.DataFrame({"id": [f"d{i}" for i in range(n)], "x": xs, "y": ys, "score": np.nan})
        patches = np.stack([reader.patch(x, y)[0] for x, y in zip(dets["x"], dets["y"], strict=True)])
        predictor.ensemble_probs(patches[:64])  # warm-up
        rounds: dict[str, list[float]] = {"in_memory": [], "slide": []}
        for _ in range(args.repeat):
            start = time.perf_counter()
            memory = predictor.ensemble_probs(patches)
            rounds["in_memory"].append(time.perf_counter() - start)
            start = time.perf_counter()
            calls = classify_detections(SlideReader(work / "slide.tif"), dets, predictor)
            rounds["slide"].append(time.perf_counter() - start)
        np.testing.assert_allclose(calls["p_atypical"].to_numpy(), memory, atol=1e-5)
    med = {k: float(np.median(v)) for k, v in rounds.items()}
    table = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "detections": args.detections,
        "folds": args.folds,
        "input_size": predictor.cfg.input_size,
        "seconds": rounds,
        "patches_per_second": {k: args.detections / v for k, v in med.items()},
        "slide_vs_in_memory": med["in_memory"] / med["slide"],
        "target": "≥ 0.80",
    }
    rate = table["patches_per_second"]
    print(
        f"{args.detections} detections, {args.folds} fold(s): in memory {rate['in_memory']:.1f} patches/s, "
        f"from the slide {rate['slide']:.1f} patches/s = {table['slide_vs_in_memory']:.1%} "
        f"(median of {args.repeat})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
