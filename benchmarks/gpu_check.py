"""The prepared device check: one command, one JSON, whenever a GPU is lent (≤ 8 minutes).

    python benchmarks/gpu_check.py --data-root ../shared/data --out gpu_check.json    # on a GPU
    python benchmarks/gpu_check.py --data-root ../shared/data --quick --out c.json    # any CPU, CI

On the device it runs (each a section of the JSON, each timed; a failing section is recorded
and the rest go on):
1. `prepare`: the device's input path (uint8 patches -> normalised network input) against the
   CPU's on real AMi-Br patches, in grey levels, for each resize the presets use;
2. `precision`: what `precision: auto` chose here for training and inference, and the bare
   forward / training step in fp32 and bf16 side by side (auto within 10 % of the faster?);
3. `recipes`: one training epoch of a few steps of every packaged preset x mode on the device
   (e2e on EfficientNet-Lite0, probe and LoRA on a ViT of random weights), finite loss and a
   saved checkpoint each;
4. `fold`: `benchmarks/reproduce_fold.py` (EfficientNetV2-M from scratch under `paper`, one of
   the paper's folds; `--fold-epochs` caps the protocol's 100 epochs to fit the budget, and the
   JSON says so) against the published fold figure;
5. `perf`: `benchmarks/perf.py` on the device (one round).
`--quick` keeps every code path with small limits (CPU, about two minutes); its numbers mean nothing,
so there the speed verdict of `precision` is recorded but does not fail the check.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _patches(data_root: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` real AMi-Br training patches, half atypical, decoded as predict holds them."""
    from mitobench.data.cache import ImageCache
    from mitobench.data.registry import load

    train = load("amibr/train", data_root)
    rng = np.random.default_rng(0)
    idx = np.sort(
        np.concatenate([rng.choice(np.flatnonzero(train.labels == c), n // 2, replace=False) for c in (0, 1)])
    )
    sub = train.subset(idx)
    return ImageCache().load(sub), sub.labels


def check_prepare(args: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    """Grey-level difference between the device's prepare path and the CPU's uint8 path."""
    from torch import nn

    from mitobench.models.encoder import Encoder, default_path
    from mitobench.models.registry import get
    from mitobench.models.spec import InputTransform

    images, _ = _patches(args.data_root, 16)
    x = torch.from_numpy(images)
    out: dict[str, Any] = {"device_path": default_path(dev), "patches": len(images), "cases": []}
    for interp, size, resize in (("bilinear", 224, 224), ("bicubic", 224, 224), ("bicubic", 224, 256)):
        tf = InputTransform(size, resize, interp, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        enc = Encoder(get("tf_efficientnet_lite0"), nn.Identity(), "check").configure(
            tf, get("tf_efficientnet_lite0").pooling
        )
        cpu = enc.prepare(x, path="uint8")
        # the device's own path; on a CPU-only check the GPU's float path, run on the CPU
        path = "float" if dev.type == "cpu" else None
        on_dev = enc.to(dev).prepare(x.to(dev), path=path).float().cpu()
        enc.to("cpu")
        levels = (on_dev - cpu).abs() * torch.tensor(tf.std).view(1, 3, 1, 1) * 255
        out["cases"].append(
            {"interpolation": interp, "size": size, "resize": resize,
             "max_levels": float(levels.max()), "mean_levels": float(levels.mean())}
        )  # fmt: skip
    out["ok"] = all(c["max_levels"] <= 2.0 for c in out["cases"])
    return out


def check_precision(args: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    """auto's choice here, and fp32 vs bf16 speed of the bare forward and training step."""
    from perf import BenchConfig, PrecisionSpeed

    from mitobench.train.precision import resolve

    cfg = BenchConfig(
        data_root=str(args.data_root), device=str(dev), random_init=args.quick,
        size=128 if args.quick else 224, steps=3 if args.quick else 30,
        infer_images=64 if args.quick else 1024, n=48 if args.quick else None,
    )  # fmt: skip
    out = PrecisionSpeed().run(cfg)
    out["train_choice"] = resolve("auto", dev, training=True, size=cfg.size).record()
    out["inference_choice"] = resolve("auto", dev).record()
    # --quick times a few steps of a random model: the verdict is recorded, never a failure there
    within = bool(out["infer_auto_within_10pct"] and out["train_auto_within_10pct"])
    out["ok"] = within or args.quick
    return out


SHORT = {
    "max_epochs": 1,
    "batch_size": 4,
    "epoch_size": 8,
    "early_stopping_patience": None,
    "eval_batch_size": 8,
}
"""One epoch of two steps: what every recipe's code path needs, not what it learns."""


def check_recipes(args: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    """A few steps of every packaged preset x mode on the device: finite loss, a checkpoint."""
    from mitobench.models.builder import build
    from mitobench.recipes.config import MODES, PRESETS, train_config
    from mitobench.runs.rundir import FoldDir
    from mitobench.train.batches import EmbeddingBatches, ImageBatches
    from mitobench.train.embeddings import extract
    from mitobench.train.loop import FitContext, fit
    from mitobench.train.modes import ModeOptions, get_mode

    images, labels = _patches(args.data_root, 16)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in PRESETS:
            for mode_name in MODES:
                started = time.perf_counter()
                mode = get_mode(mode_name)
                model_name = "tf_efficientnet_lite0" if mode_name == "e2e" else args.vit
                overrides: dict[str, Any] = dict(SHORT)
                if args.quick and mode_name == "e2e":
                    overrides["input_size"] = 64
                cfg = train_config(mode_name, preset, overrides)  # type: ignore[arg-type]
                enc = build(model_name, pretrained=False)
                enc.configure(cfg.transform_for(enc.spec), cfg.pooling_for(enc.spec))
                enc = enc.to(dev)
                options = ModeOptions()
                model = mode.classifier(enc, options).to(dev)
                if mode.on_embeddings:
                    emb = extract(enc, images, cfg.eval_precision, dev, 8)
                    data: Any = EmbeddingBatches(emb, labels, dev)
                else:
                    data = ImageBatches(images, labels, enc, cfg.augment, enc.spec.convolutional, dev)
                fold = FoldDir(Path(tmp) / f"{preset}-{mode_name}", 0)
                result = fit(model, FitContext(data, data, cfg, fold, dev))
                loss = result.history[-1]["loss"]
                rows.append(
                    {"preset": preset, "mode": mode_name, "model": model_name, "loss": loss,
                     "precision": result.precision, "checkpoint": fold.best.is_file(),
                     "seconds": round(time.perf_counter() - started, 2)}
                )  # fmt: skip
    return {"rows": rows, "ok": all(np.isfinite(r["loss"]) and r["checkpoint"] for r in rows)}


def _script(name: str, *cli: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(HERE / name), *cli], capture_output=True, text=True)


def check_fold(args: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cli = ["--data-root", str(args.data_root), "--fold", str(args.fold), "--out", tmp]
        # --quick: two seeds, so the smoke test also covers the verdict over several runs
        cli += ["--quick", "--seeds", "3,4"] if args.quick else ["--max-epochs", str(args.fold_epochs)]
        proc = _script("reproduce_fold.py", *cli)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        record = json.loads(next(Path(tmp).glob("*/reproduction.json")).read_text())
    record["capped_epochs"] = None if args.quick else args.fold_epochs
    record["stdout"] = proc.stdout[-3000:]
    record["ok"] = bool(record["paper_folds"])
    return record


def check_perf(args: argparse.Namespace, dev: torch.device) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "perf.json"
        cli = ["--data-root", str(args.data_root), "--device", str(dev), "--out", str(out)]
        cli += ["--quick"] if args.quick else ["--repeat", "1", "--skip-precision"]
        proc = _script("perf.py", *cli)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        table = json.loads(out.read_text())
    keep = ("rows", "markdown", "peak_rss_mb", "machine")
    return {**{k: table[k] for k in keep}, "precision_speed": table["raw"].get("precision/speed"),
            "malloc": {k: v.get("malloc") for k, v in table["raw"].items()},
            "stdout": proc.stdout[-3000:], "ok": True}  # fmt: skip


CHECKS: dict[str, Callable[[argparse.Namespace, torch.device], dict[str, Any]]] = {
    "prepare": check_prepare,
    "precision": check_precision,
    "recipes": check_recipes,
    "fold": check_fold,
    "perf": check_perf,
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--quick", action="store_true", help="every path with small limits (a CPU smoke test)")
    p.add_argument(
        "--vit", default="vit_base_patch16_224", help="the ViT for probe and LoRA (random weights)"
    )
    p.add_argument("--fold", type=int, default=0)
    p.add_argument("--fold-epochs", type=int, default=10, help="cap on the paper fold's epochs")
    p.add_argument("--only", nargs="*", choices=list(CHECKS), help="run these sections only")
    p.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    args = p.parse_args(argv)
    if args.quick and args.vit == p.get_default("vit"):
        args.vit = "vit_tiny_patch16_224"

    from mitobench import machine

    machine.configure_threads()
    dev = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    record: dict[str, Any] = {
        "device": str(dev),
        "quick": args.quick,
        "machine": {**machine.describe(), "label": machine.label()},
    }
    started = time.perf_counter()
    for name, check in CHECKS.items():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        try:
            record[name] = check(args, dev)
        except Exception as exc:  # one failing section must not hide the others
            record[name] = {
                "ok": False,
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-3000:],
            }
        record[name]["seconds"] = round(time.perf_counter() - t, 1)
        print(f"{name}: {'ok' if record[name]['ok'] else 'FAILED'} ({record[name]['seconds']} s)", flush=True)
    record["seconds"] = round(time.perf_counter() - started, 1)
    record["ok"] = all(record[n]["ok"] for n in CHECKS if n in record)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1, default=str) + "\n")
    print(
        f"measured on {record['machine']['label']}; {record['seconds']} s; "
        + ("all ok" if record["ok"] else "FAILURES")
    )
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
