"""How fast does a trained run classify patches: one fold model, and the fold ensemble?

    python benchmarks/inference_speed.py --run results/cpu-best/runs/tf_efficientnet_lite0-e2e-cpu-best
    python benchmarks/inference_speed.py --shipped amibr-lite0   # the package's own files
    python benchmarks/inference_speed.py --quick        # a smoke test on a tiny run it trains

Scores the AMi-Br test patches (already decoded in memory, as `predict` holds them) with the run's
own input size and normalisation, the way `predict` and the test-set evaluation do: first each fold
model alone (the single-model figure), then the whole fold ensemble; with PyTorch in fp32 and in
bf16 and with ONNX Runtime (fp32, one fold model exported by `mitobench export --format onnx`'s
code) side by side. `--shipped NAME` times a shipped model's own files instead: its bundle under
PyTorch, its `.onnx` under ONNX Runtime — what `predict` runs. Says which one `precision: auto`
picks on this machine and whether that is within 10 % of the faster, and which engine is the fastest
here. One warm-up pass, then --repeat rounds; medians are reported. `--quick` times bf16 on 16
patches only where the processor emulates it (10-15x slower: the path, not the figure).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


@dataclass(frozen=True)
class Source:
    """What is timed: a run folder (its fold models; ONNX exported from its first), or a shipped
    model's files (its bundle for PyTorch, its own `.onnx` for ONNX Runtime)."""

    run: Path | None = None
    shipped: str | None = None

    def __str__(self) -> str:
        return str(self.run) if self.run is not None else f"shipped:{self.shipped}"

    def predictor(self) -> Any:
        from mitobench.inference.bundle import from_bundle
        from mitobench.inference.predictor import from_run

        if self.run is not None:
            return from_run(self.run)
        return from_bundle(self.ship().bundle)

    def onnx(self, tmp: Path) -> Any:
        """The ONNX Runtime engine of one model (the first fold's, for a run)."""
        from mitobench.inference.onnx import export_onnx, from_onnx

        if self.run is None:
            return from_onnx(self.ship().onnx)
        predictor = self.predictor()
        first = min(predictor.fold_states)
        predictor.fold_states = {first: predictor.fold_states[first]}
        return from_onnx(export_onnx(predictor, tmp / "one.onnx"))

    def ship(self) -> Any:
        """The shipped model's files; a user error when there is no such model."""
        from mitobench.inference.shipped import require_shipped

        return require_shipped(str(self.shipped))


def measure(
    run: Source,
    data_root: Path,
    repeat: int,
    limit: int | None,
    quick: bool = False,
    max_folds: int | None = None,
) -> dict:
    """Per precision (fp32, bf16): patches per second of one fold model (median over folds and
    rounds) and of the ensemble; ONNX Runtime's; and what `precision: auto` and `--engine auto`
    choose here."""
    from mitobench import machine
    from mitobench.inference.shipped import auto_uses_onnx
    from mitobench.train.precision import device, resolve

    out: dict = {"run": str(run), "machine": {**machine.describe(), "label": machine.label()}}
    choice = resolve("auto", device())
    for precision in ("fp32", "bf16"):
        few = quick and precision == "bf16" and choice.name != "bf16"
        out[precision] = measure_one(run, data_root, repeat, 16 if few else limit, precision, max_folds)
    out["onnx"] = measure_onnx(run, data_root, repeat, limit)
    engines = {"PyTorch fp32": out["fp32"], "PyTorch bf16": out["bf16"], "ONNX Runtime fp32": out["onnx"]}
    out["fastest_engine"] = max(
        (name for name, r in engines.items() if r),
        key=lambda n: engines[n]["single_model_patches_per_second"],
    )
    fastest = max(out[p]["single_model_patches_per_second"] for p in ("fp32", "bf16"))
    auto = out[choice.name]["single_model_patches_per_second"]
    out.update(
        patches=out["fp32"]["patches"],
        folds=out["fp32"]["folds"],
        input_size=out["fp32"]["input_size"],
        auto=choice.name,
        auto_reason=choice.reason,
        auto_within_10pct=auto >= 0.9 * fastest,
    )
    # `--engine auto` (predict, slide, midog on a shipped model, which has both forms): ONNX Runtime
    # or PyTorch at `precision: auto`; on a CPU with native bf16 the verdict of the engine race
    onnx_auto = auto_uses_onnx(run.ship() if run.shipped else None)
    out["engine_auto"] = "ONNX Runtime fp32" if onnx_auto else f"PyTorch {choice.name}"
    best = engines[out["fastest_engine"]]["single_model_patches_per_second"]
    auto_engine = engines[out["engine_auto"]]["single_model_patches_per_second"]
    out["engine_auto_within_10pct"] = auto_engine >= 0.9 * best
    return out


def measure_one(
    run: Source, data_root: Path, repeat: int, limit: int | None, precision: str, max_folds: int | None = None
) -> dict:
    """Patches per second of one fold model (median over folds and rounds) and of the ensemble
    (of the first `max_folds` fold models)."""
    from mitobench.data.cache import ImageCache
    from mitobench.data.registry import load

    images = ImageCache().load(load("amibr/test", data_root))[:limit]
    predictor = run.predictor()
    predictor.cfg = predictor.cfg.model_copy(update={"precision": precision, "inference_precision": None})
    states = dict(list(predictor.fold_states.items())[:max_folds])
    first = next(iter(states))
    predictor.fold_states = {first: states[first]}
    predictor.fold_probs(images[:64])  # warm-up: allocation, BatchNorm folding, kernels
    single, ensemble = [], []
    for _ in range(repeat):
        for k, state in states.items():
            predictor.fold_states = {k: state}
            start = time.perf_counter()
            predictor.fold_probs(images)
            single.append(len(images) / (time.perf_counter() - start))
        if len(states) == 1:  # the ensemble is the one model
            ensemble.append(single[-1])
            continue
        predictor.fold_states = states
        start = time.perf_counter()
        predictor.fold_probs(images)
        ensemble.append(len(images) / (time.perf_counter() - start))
    return {
        "patches": len(images),
        "folds": len(states),
        "input_size": predictor.cfg.input_size,
        "precision": precision,
        "single_model_patches_per_second": statistics.median(single),
        "single_model_rounds": single,
        "ensemble_patches_per_second": statistics.median(ensemble),
        "ensemble_rounds": ensemble,
        "threads": torch.get_num_threads(),
    }


def measure_onnx(run: Source, data_root: Path, repeat: int, limit: int | None) -> dict | None:
    """Patches per second of one model under ONNX Runtime (None when it is not installed)."""
    try:
        import onnxruntime
    except ImportError:
        return None
    from mitobench.data.cache import ImageCache
    from mitobench.data.registry import load

    images = ImageCache().load(load("amibr/test", data_root))[:limit]
    with tempfile.TemporaryDirectory() as tmp:
        engine = run.onnx(Path(tmp))
        engine.fold_probs(images[:64])  # warm-up
        rounds = []
        for _ in range(repeat):
            start = time.perf_counter()
            engine.fold_probs(images)
            rounds.append(len(images) / (time.perf_counter() - start))
    return {
        "patches": len(images),
        "single_model_patches_per_second": statistics.median(rounds),
        "single_model_rounds": rounds,
        "version": onnxruntime.__version__,
    }


def positive(text: str) -> int:
    """A count of patches, rounds or folds: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is below 1")
    return value


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group(required=True)  # one thing is timed
    what.add_argument("--run", type=Path, help="a run directory made by mitobench train or run")
    what.add_argument("--shipped", metavar="NAME", help="a shipped model's own files (e.g. amibr-lite0)")
    what.add_argument("--quick", action="store_true", help="train a tiny two-fold run and time 128 patches")
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--repeat", type=positive, default=3)
    p.add_argument("--limit", type=positive, help="time the first N AMi-Br test patches only")
    p.add_argument("--max-folds", type=positive, help="time only the first N fold models (1: one model)")
    p.add_argument("--out", type=Path, help="write the figures as JSON")
    args = p.parse_args(argv)
    if args.out and args.out.exists():
        p.error(f"{args.out} exists: pass another --out path (results are never overwritten)")
    from mitobench.allocator import configure_allocator
    from mitobench.errors import MitobenchError
    from mitobench.machine import configure_threads

    configure_threads()
    configure_allocator()  # as the command line does; $MITOBENCH_MALLOC=system for glibc's defaults
    with tempfile.TemporaryDirectory() as tmp:
        source, limit = Source(args.run, args.shipped), args.limit
        if args.quick:
            from slide_speed import train_model

            source, limit = Source(Path(tmp) / "run"), 128
            train_model(args.data_root, Path(tmp) / "run", folds=2, steps=2)
        repeat = 1 if args.quick else args.repeat
        try:
            if args.shipped is not None:
                source.ship()  # before the patches are decoded
            result = measure(source, args.data_root, repeat, limit, args.quick, args.max_folds)
        except MitobenchError as exc:
            p.error(str(exc))
    print(f"measured on {result['machine']['label']}; malloc: {result['machine']['malloc']}")
    for precision in ("fp32", "bf16"):
        r = result[precision]
        print(
            f"{r['patches']} patches at {r['input_size']} px, {precision}: "
            f"one fold model {r['single_model_patches_per_second']:.1f} patches/s, "
            f"the {r['folds']}-fold ensemble {r['ensemble_patches_per_second']:.1f} patches/s"
        )
    verdict = "within 10 % of the faster" if result["auto_within_10pct"] else "NOT within 10 % of the faster"
    print(f"precision auto picks {result['auto']} here ({result['auto_reason']}): {verdict}")
    onnx = result["onnx"]
    if onnx is None:
        print("ONNX Runtime: not installed (pip install 'mitobench[onnx]')")
    else:
        print(
            f"{onnx['patches']} patches, ONNX Runtime {onnx['version']} fp32: "
            f"one fold model {onnx['single_model_patches_per_second']:.1f} patches/s"
        )
    print(f"fastest engine here for one fold model: {result['fastest_engine']}")
    verdict = "within 10 % of the fastest" if result["engine_auto_within_10pct"] else "NOT within 10 %"
    print(f"--engine auto runs {result['engine_auto']} here: {verdict}")
    if args.out:
        from mitobench.paths import atomic_write_text

        atomic_write_text(args.out, json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
