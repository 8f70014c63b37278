"""Our pipeline against the reference pipeline: same model, resolution and data, one machine.

    python benchmarks/perf.py --data-root ../shared/data            # full mode, real AMi-Br
    python benchmarks/perf.py --data-root ../shared/data --quick    # smoke test, < 1 minute
    python benchmarks/perf.py --device cuda --model vit_base_patch16_224 --random-init   # a GPU, a ViT

Each measurement runs in its own process (so peak memory is its own), in --repeat rounds that
interleave both sides (this machine's speed drifts by ±20 % over minutes); medians are reported.
Prints one table with both sides and their ratios and writes it as JSON (--out).
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODEL = "tf_efficientnet_lite0"
"""The CPU default (real offline ImageNet weights); on a GPU pass e.g. --model vit_base_patch16_224."""


def _data(data_root: Path, n: int | None):
    from mitobench.data.registry import load
    from mitobench.data.splits import assign_folds

    train = load("amibr/train", data_root)
    folds = assign_folds(train)
    if n is not None:  # quick mode: a stratified handful, spread over the folds
        rng = np.random.default_rng(0)
        idx = np.sort(
            np.concatenate(
                [rng.choice(np.flatnonzero(train.labels == c), n // 2, replace=False) for c in (0, 1)]
            )
        )
        train, folds = train.subset(idx), folds[idx]
    return train, folds


ARGS: argparse.Namespace | None = None


def _encoder():
    """The benchmarked model, on the benchmark's device (random init with --random-init)."""
    from mitobench.models.builder import build

    enc = build(ARGS.model, pretrained=not ARGS.random_init)
    enc.configure(enc.spec.transform_at(ARGS.size), enc.spec.pooling)
    return enc.eval().to(_dev())


def _dev() -> torch.device:
    if ARGS.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(ARGS.device)


def _sync() -> None:
    """Wait for queued GPU work, so a timer measures what ran."""
    if _dev().type == "cuda":
        torch.cuda.synchronize()


def _autocast(precision: str):
    import contextlib

    return (
        torch.autocast(_dev().type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    )


# ---------------------------------------------------------------- workers (one process each)


def worker_probe_reference(args) -> dict:
    import reference_pipeline as ref

    train, folds = _data(args.data_root, args.n)
    enc = _encoder()
    net = enc.network  # num_classes=0: pooled features, as the reference's feature extractor
    tf = ref.eval_transform(enc.spec.mean, enc.spec.std, args.size)
    paths = [str(p) for p in train.paths]
    labels = train.labels.tolist()
    start = time.perf_counter()
    scores = []
    for k in range(5):
        tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
        xt = ref.extract_batch1(net, [paths[i] for i in tr], tf)  # re-extracted every fold, batch 1
        xv = ref.extract_batch1(net, [paths[i] for i in va], tf)
        scores.append(
            ref.train_head(xt, [labels[i] for i in tr], xv, [labels[i] for i in va], args.head_epochs)
        )
    return {"seconds": time.perf_counter() - start, "val_bacc": float(np.mean(scores))}


def worker_probe_ours(args) -> dict:
    from mitobench.data.cache import ImageCache
    from mitobench.train.batches import EmbeddingBatches
    from mitobench.train.config import train_config
    from mitobench.train.embeddings import extract
    from mitobench.train.loop import fit
    from mitobench.train.model import Classifier
    from mitobench.train.rundir import FoldDir

    train, folds = _data(args.data_root, args.n)
    cfg = train_config(
        "probe",
        "paper",
        {
            "input_size": args.size,
            "max_epochs": args.head_epochs,
            "early_stopping_patience": None,
            "precision": args.precision,
        },
    )
    encoder = _encoder()  # built before the clock starts, as on the reference side
    start = time.perf_counter()
    images = ImageCache().load(train)  # decoded once (cached on disk across runs)
    t_load = time.perf_counter()
    emb = extract(encoder, images, args.precision, _dev(), batch_size=64)
    t_extract = time.perf_counter()
    scores = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for k in range(5):
            tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
            model = Classifier(None, emb.shape[1])
            res = fit(
                model,
                EmbeddingBatches(emb[tr], train.labels[tr]),
                EmbeddingBatches(emb[va], train.labels[va]),
                cfg,
                FoldDir(Path(tmp) / f"f{k}", k),
                torch.device("cpu"),
            )
            scores.append(res.best_score)
    end = time.perf_counter()
    return {
        "seconds": end - start,
        "val_bacc": float(np.mean(scores)),
        "parts": {"load": t_load - start, "extract": t_extract - t_load, "heads": end - t_extract},
    }


def worker_train_reference(args) -> dict:
    import reference_pipeline as ref

    train, _ = _data(args.data_root, args.n)
    enc = _encoder()
    model = torch.nn.Sequential(enc.network, torch.nn.Linear(enc.embed_dim, 1)).to(_dev())
    ips = ref.train_throughput(
        model,
        [str(p) for p in train.paths],
        train.labels.tolist(),
        enc.spec.mean,
        enc.spec.std,
        steps=args.steps * 4,
        workers=2,
        size=args.size,
    )
    return {"images_per_second": ips}


def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float())


def _train_rate(model: torch.nn.Module, next_batch, loss_fn, args, lr: float, wd: float) -> float:
    """Images per second of forward + backward + AdamW step, after two warm-up steps.

    `next_batch()` gives (inputs, targets) on the device; whatever it does is timed with the step.
    """
    model.to(_dev(), memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, fused=True)
    seen, start = 0, None
    for step in range(2 + args.steps):
        if step == 2:
            _sync()
            start, seen = time.perf_counter(), 0
        x, y = next_batch()
        with _autocast(args.train_precision):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
    _sync()
    return seen / (time.perf_counter() - start)


def worker_train_ours(args) -> dict:
    from mitobench.data.cache import ImageCache
    from mitobench.train.batches import ImageBatches
    from mitobench.train.config import train_config
    from mitobench.train.losses import binary_loss
    from mitobench.train.modes import ModeOptions, get_mode

    train, _ = _data(args.data_root, args.n)
    cfg = train_config(
        "e2e",
        "cpu",
        {"input_size": args.size, "precision": args.train_precision, "batch_size": args.train_batch},
    )
    images = ImageCache().load(train)
    enc = _encoder()
    data = ImageBatches(images, train.labels, enc, cfg.augment, True, _dev())
    g = torch.Generator().manual_seed(0)
    weights = torch.from_numpy(1.0 / np.bincount(train.labels)[train.labels])

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.multinomial(weights, cfg.batch_size, replacement=True, generator=g).numpy()
        return data.get(idx, g).to(_dev()), torch.from_numpy(train.labels[idx]).to(_dev())

    def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return binary_loss(logits, y, cfg, None)

    model = get_mode("e2e").classifier(enc, ModeOptions())
    ips = _train_rate(model, next_batch, loss_fn, args, cfg.lr, cfg.weight_decay)
    return {"images_per_second": ips}


def worker_train_bare(args) -> dict:
    """The limit for (b): forward, backward and step of the same model on one pre-made batch."""
    from mitobench.train.modes import ModeOptions, get_mode

    enc = _encoder()
    x = torch.randn(args.train_batch, 3, args.size, args.size, device=_dev())
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(args.train_batch, device=_dev()) % 2
    model = get_mode("e2e").classifier(enc, ModeOptions())
    ips = _train_rate(model, lambda: (x, y), _bce, args, lr=1e-4, wd=1e-2)
    return {"images_per_second": ips}


def _infer_images(args) -> tuple:
    from mitobench.data.cache import ImageCache

    train, _ = _data(args.data_root, args.n)
    images = ImageCache().load(train)
    reps = -(-args.infer_images // len(images))
    return train, np.concatenate([images] * reps)[: args.infer_images]


def _bare(args, folded: bool) -> dict:
    from mitobench.models.fusion import inference_copy
    from mitobench.train.precision import inference_batch

    _, images = _infer_images(args)
    enc = _encoder()
    batch = inference_batch(64, args.size, _dev())  # the chunk size our pipeline uses
    x = enc.prepare(torch.from_numpy(images[:batch])).contiguous(memory_format=torch.channels_last)
    net = inference_copy(enc, x[:2]) if folded else enc.eval()
    net = net.to(memory_format=torch.channels_last)
    n_batches = len(images) // batch
    with torch.inference_mode(), _autocast(args.precision):
        net(x)
        _sync()
        start = time.perf_counter()
        for _ in range(n_batches):
            net(x)
        _sync()
    return {"images_per_second": n_batches * batch / (time.perf_counter() - start), "batch": batch}


def worker_infer_bare(args) -> dict:
    """The limit for (c): the network ours runs (BatchNorm folded) on one pre-made batch."""
    return _bare(args, folded=True)


def worker_infer_bare_plain(args) -> dict:
    """For reference: the timm module as built (BatchNorm separate) on one pre-made batch."""
    return _bare(args, folded=False)


def worker_infer_ours(args) -> dict:
    from mitobench.train.batches import ImageBatches
    from mitobench.train.config import train_config
    from mitobench.train.loop import predict_probs
    from mitobench.train.model import Classifier

    _, images = _infer_images(args)
    images = images[: (len(images) // 64) * 64]
    enc = _encoder()
    model = Classifier(enc, enc.embed_dim).to(_dev(), memory_format=torch.channels_last)
    cfg = train_config(
        "e2e", "cpu", {"input_size": args.size, "precision": args.precision, "eval_batch_size": 64}
    )
    data = ImageBatches(images, np.zeros(len(images), dtype=np.int64), enc, [], True, _dev())
    predict_probs(
        model,
        ImageBatches(images[:64], np.zeros(64, dtype=np.int64), enc, [], True, _dev()),
        cfg,
        _dev(),
    )
    start = time.perf_counter()
    predict_probs(model, data, cfg, _dev())
    return {"images_per_second": len(images) / (time.perf_counter() - start)}


def worker_infer_reference(args) -> dict:
    import reference_pipeline as ref

    train, _ = _data(args.data_root, args.n)
    enc = _encoder()
    tf = ref.eval_transform(enc.spec.mean, enc.spec.std, args.size)
    paths = [str(p) for p in train.paths][: min(len(train), args.infer_images // 4)]
    ref.extract_batch1(enc.network, paths[:8], tf)
    start = time.perf_counter()
    ref.extract_batch1(enc.network, paths, tf)
    return {"images_per_second": len(paths) / (time.perf_counter() - start)}


def worker_precision(args) -> dict:
    """The same trained fold models scored on the AMi-Br test split in fp32 and in bf16."""
    from mitobench.data.cache import ImageCache
    from mitobench.data.registry import load
    from mitobench.inference.predictor import from_run
    from mitobench.metrics.binary import compute

    test = load("amibr/test", args.data_root)
    images = ImageCache().load(test)
    predictor = from_run(args.precision_run)
    out: dict[str, object] = {"run": str(args.precision_run)}
    for precision in ("fp32", "bf16"):
        predictor.cfg = predictor.cfg.model_copy(update={"precision": precision})
        start = time.perf_counter()
        probs = predictor.fold_probs(images)
        seconds = time.perf_counter() - start
        per_fold = [
            compute(test.labels, p, predictor.thresholds[k])["balanced_accuracy"] for k, p in probs.items()
        ]
        out[precision] = {"per_fold": per_fold, "mean": float(np.mean(per_fold)), "seconds": seconds}
    return out


WORKERS = {
    "probe/reference": worker_probe_reference,
    "probe/ours": worker_probe_ours,
    "train/reference": worker_train_reference,
    "train/ours": worker_train_ours,
    "train/bare": worker_train_bare,
    "infer/bare": worker_infer_bare,
    "infer/bare-plain": worker_infer_bare_plain,
    "infer/ours": worker_infer_ours,
    "infer/reference": worker_infer_reference,
    "precision": worker_precision,
}


def _median_of(runs: list[dict]) -> dict:
    """The median of each timing over the runs, the largest peak RSS, and every run as it was."""
    out = dict(runs[0])
    for key in ("seconds", "images_per_second"):
        if key in out:
            out[key] = float(np.median([r[key] for r in runs]))
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["runs"] = runs
    return out


def run_worker(name: str, argv: list[str]) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, *argv]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    p.add_argument("--quick", action="store_true", help="a smoke test on a few images, under a minute")
    p.add_argument("--size", type=int, default=224, help="network input side (the paper's 224)")
    p.add_argument("--model", default=MODEL, help="any registered or timm model (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument(
        "--random-init",
        action="store_true",
        help="random weights of the same architecture (speed only; for machines without the weights)",
    )
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16", help="inference and extraction")
    p.add_argument(
        "--train-precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="training (fp32 is the faster one on the 2-core EPYC we measured)",
    )
    p.add_argument(
        "--train-batch",
        type=int,
        default=16,
        help="our training batch (16 is the fastest at 224 px on the 2-core EPYC; the reference uses 8)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--n", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=30, help=argparse.SUPPRESS)
    p.add_argument("--head-epochs", type=int, default=10, help=argparse.SUPPRESS)
    p.add_argument("--infer-images", type=int, default=1024, help=argparse.SUPPRESS)
    p.add_argument(
        "--precision-run",
        type=Path,
        default=Path("results/cpu/runs/tf_efficientnet_lite0-e2e-cpu"),
        help="a finished run whose fold models are scored in fp32 and bf16",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds over all measurements (medians are reported; the reference probe runs once)",
    )
    p.add_argument("--skip-precision", action="store_true", help="skip the fp32-vs-bf16 accuracy check")
    p.add_argument("--work", type=Path, default=Path("/tmp/mitobench-perf"), help=argparse.SUPPRESS)
    args = p.parse_args()
    global ARGS
    ARGS = args
    if args.worker:
        torch.manual_seed(0)
        result = WORKERS[args.worker](args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return
    argv = [
        "--model",
        args.model,
        "--device",
        args.device,
        *(["--random-init"] if args.random_init else []),
        "--data-root",
        str(args.data_root),
        "--size",
        str(args.size),
        "--precision",
        args.precision,
        "--train-precision",
        args.train_precision,
        "--train-batch",
        str(args.train_batch),
        "--work",
        str(args.work),
    ]
    if args.quick:
        argv += ["--n", "48", "--steps", "3", "--head-epochs", "2", "--infer-images", "64"]
        if args.model == MODEL:  # a CNN takes the native 128 px (a ViT keeps its fixed input size)
            args.size = 128
            argv[argv.index("--size") + 1] = "128"
    names = [
        "probe/reference",
        "probe/ours",
        "train/reference",
        "train/ours",
        "train/bare",
        "infer/reference",
        "infer/ours",
        "infer/bare",
        "infer/bare-plain",
    ]
    samples: dict[str, list[dict]] = {name: [] for name in names}
    repeat = 1 if args.quick else args.repeat
    for round_ in range(repeat):  # rounds interleave both sides, so drift of the machine hits both
        for name in names:
            if name == "probe/reference" and round_ > 0:
                continue  # minutes long: one run already averages over the drift
            t = time.perf_counter()
            samples[name].append(run_worker(name, argv))
            print(
                f"  [{round_ + 1}/{repeat}] {name}: {samples[name][-1]}  ({time.perf_counter() - t:.0f} s)",
                file=sys.stderr,
            )
    results = {name: _median_of(runs) for name, runs in samples.items()}
    if not args.quick and not args.skip_precision and (args.precision_run / "run.json").is_file():
        results["precision"] = run_worker("precision", [*argv, "--precision-run", str(args.precision_run)])

    def value(name: str) -> float:
        return results[name].get("seconds") or results[name]["images_per_second"]

    def row(measure: str, left: str, right: str, ratio: float, target: str) -> tuple:
        return measure, value(left), value(right), ratio, target

    rows = [
        row(
            "(a) linear probing, 5 folds [s]",
            "probe/reference",
            "probe/ours",
            value("probe/reference") / value("probe/ours"),
            "≥ 10×",
        ),
        row(
            "(b) e2e training [img/s]",
            "train/reference",
            "train/ours",
            value("train/ours") / value("train/reference"),
            "≥ 3×",
        ),
        row(
            "(b) the same, against the bare training step [img/s]",
            "train/bare",
            "train/ours",
            value("train/ours") / value("train/bare"),
            "(limit: no pipeline beats it)",
        ),
        row(
            "(c) inference [img/s]",
            "infer/reference",
            "infer/ours",
            value("infer/ours") / value("infer/bare"),
            f"≥ 90% of bare {value('infer/bare'):.1f}",
        ),
        row(
            "(c) bare forward: BatchNorm folded vs as built [img/s]",
            "infer/bare-plain",
            "infer/bare",
            value("infer/bare") / value("infer/bare-plain"),
            "(what folding buys)",
        ),
    ]
    table = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(_dev()) if _dev().type == "cuda" else None,
        },
        "model": args.model,
        "random_init": args.random_init,
        "device": str(_dev()),
        "input_size": args.size,
        "precision": args.precision,
        "train_precision": args.train_precision,
        "train_batch": args.train_batch,
        "quick": args.quick,
        "repeat": 1 if args.quick else args.repeat,
        "rows": [
            {"measure": r[0], "reference": r[1], "ours": r[2], "ratio": r[3], "target": r[4]} for r in rows
        ],
        "peak_rss_mb": {k: v["peak_rss_mb"] for k, v in results.items() if "peak_rss_mb" in v},
        "raw": results,
    }
    lines = ["| measure | reference | ours | ratio | target |", "|---|---:|---:|---:|---|"]
    for r in table["rows"]:
        lines.append(
            f"| {r['measure']} | {r['reference']:.1f} | {r['ours']:.1f} | {r['ratio']:.2f} | {r['target']} |"
        )
    lines.append("")
    lines.append("| process | peak RSS [MB] |")
    lines.append("|---|---:|")
    lines += [f"| {k} | {v:.0f} |" for k, v in table["peak_rss_mb"].items()]
    if "precision" in results:
        pr = results["precision"]
        diff = max(abs(a - b) for a, b in zip(pr["fp32"]["per_fold"], pr["bf16"]["per_fold"], strict=True))
        lines.append("")
        lines.append(
            f"Precision check ({pr['run']}, AMi-Br test, the same fold models): balanced accuracy "
            f"fp32 {pr['fp32']['mean']:.4f}, bf16 {pr['bf16']['mean']:.4f} (fold mean); largest per-fold "
            f"difference {diff:.4f}; inference {pr['fp32']['seconds']:.0f} s vs {pr['bf16']['seconds']:.0f} s"
        )
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**table, "markdown": "\n".join(lines)}, indent=1))


if __name__ == "__main__":
    main()
