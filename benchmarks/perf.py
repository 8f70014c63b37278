"""Our pipeline against the reference pipeline: same model, resolution and data, one machine.

    python benchmarks/perf.py --data-root ../shared/data            # full mode, real AMi-Br
    python benchmarks/perf.py --data-root ../shared/data --quick    # smoke test, < 1 minute
    python benchmarks/perf.py --device cuda --model vit_base_patch16_224 --random-init   # a GPU, a ViT

Shaped after timm's benchmark.py: one `BenchConfig` is handed to every measurement; each
measurement is a class that runs in its own process (so peak memory is its own), in --repeat
rounds that interleave both sides (this machine's speed drifts by ±20 % over minutes); medians are
reported. The comparison table is data (`ROWS`); `main` prints it and writes it as JSON (--out).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

MODEL = "tf_efficientnet_lite0"
"""The CPU default (real offline ImageNet weights); on a GPU pass e.g. --model vit_base_patch16_224."""


@dataclass(frozen=True)
class BenchConfig:
    """Everything a measurement needs; travels to the worker process as JSON."""

    data_root: str = "../shared/data"
    model: str = MODEL
    device: str = "auto"
    random_init: bool = False
    size: int = 224
    precision: str = "auto"
    train_precision: str = "auto"
    """`auto`: what the packaged recipes use on this hardware (mitobench.train.precision.choose)."""
    train_batch: int = 16
    n: int | None = None
    """Quick mode: a stratified handful of training figures."""
    steps: int = 30
    head_epochs: int = 10
    infer_images: int = 1024
    precision_run: str = "results/cpu/runs/tf_efficientnet_lite0-e2e-cpu"

    @property
    def dev(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def sync(self) -> None:
        """Wait for queued GPU work, so a timer measures what ran."""
        if self.dev.type == "cuda":
            torch.cuda.synchronize()

    def autocast(self, precision: str, training: bool = False) -> contextlib.AbstractContextManager:
        from mitobench.train.precision import resolve

        dtype = resolve(precision, self.dev, training).dtype
        return torch.autocast(self.dev.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()

    def encoder(self):
        """The benchmarked model at the benchmark's size, on its device (random init if asked)."""
        from mitobench.models.builder import build

        enc = build(self.model, pretrained=not self.random_init)
        enc.configure(enc.spec.transform_at(self.size), enc.spec.pooling)
        return enc.eval().to(self.dev)

    def data(self):
        """(AMi-Br training split, its paper folds), or a stratified handful in quick mode."""
        from mitobench.data.registry import load
        from mitobench.data.splits import assign_folds

        train = load("amibr/train", Path(self.data_root))
        folds = assign_folds(train)
        if self.n is None:
            return train, folds
        rng = np.random.default_rng(0)
        idx = np.sort(
            np.concatenate(
                [rng.choice(np.flatnonzero(train.labels == c), self.n // 2, replace=False) for c in (0, 1)]
            )
        )
        return train.subset(idx), folds[idx]

    def images(self):
        from mitobench.data.cache import ImageCache

        train, folds = self.data()
        return train, folds, ImageCache().load(train)


# ---------------------------------------------------------------- measurements (one process each)


class Measurement(ABC):
    """One timed quantity; `run` returns a dict with `seconds` or `images_per_second`."""

    name: ClassVar[str]
    once: ClassVar[bool] = False
    """Minutes long: one run already averages over the machine's drift."""

    @abstractmethod
    def run(self, cfg: BenchConfig) -> dict[str, Any]: ...


class ProbeReference(Measurement):
    name, once = "probe/reference", True

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        import reference_pipeline as ref

        train, folds = cfg.data()
        enc = cfg.encoder()
        tf = ref.eval_transform(enc.transform.mean, enc.transform.std, cfg.size)
        paths, labels = [str(p) for p in train.paths], train.labels.tolist()
        start = time.perf_counter()
        scores = []
        for k in range(5):
            tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
            xt = ref.extract_batch1(enc.network, [paths[i] for i in tr], tf)  # every fold, batch 1
            xv = ref.extract_batch1(enc.network, [paths[i] for i in va], tf)
            scores.append(
                ref.train_head(xt, [labels[i] for i in tr], xv, [labels[i] for i in va], cfg.head_epochs)
            )
        return {"seconds": time.perf_counter() - start, "val_bacc": float(np.mean(scores))}


class ProbeOurs(Measurement):
    name = "probe/ours"

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        from mitobench.data.cache import ImageCache
        from mitobench.recipes.config import train_config
        from mitobench.runs.rundir import FoldDir
        from mitobench.train.batches import EmbeddingBatches
        from mitobench.train.embeddings import extract
        from mitobench.train.loop import FitContext, fit
        from mitobench.train.model import Classifier

        train, folds = cfg.data()
        overrides = {"input_size": cfg.size, "max_epochs": cfg.head_epochs, "early_stopping_patience": None}
        recipe = train_config("probe", "paper", {**overrides, "precision": cfg.precision})
        encoder = cfg.encoder()  # built before the clock starts, as on the reference side
        start = time.perf_counter()
        images = ImageCache().load(train)  # decoded once (cached on disk across runs)
        t_load = time.perf_counter()
        emb = extract(encoder, images, cfg.precision, cfg.dev, batch_size=64)
        t_extract = time.perf_counter()
        scores = []
        with tempfile.TemporaryDirectory() as tmp:
            for k in range(5):
                tr, va = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
                train_b = EmbeddingBatches(emb[tr], train.labels[tr])
                val_b = EmbeddingBatches(emb[va], train.labels[va])
                fold = FoldDir(Path(tmp) / f"f{k}", k)
                scores.append(
                    fit(
                        Classifier(None, emb.shape[1]),
                        FitContext(train_b, val_b, recipe, fold, torch.device("cpu")),
                    ).best_score
                )
        end = time.perf_counter()
        parts = {"load": t_load - start, "extract": t_extract - t_load, "heads": end - t_extract}
        return {"seconds": end - start, "val_bacc": float(np.mean(scores)), "parts": parts}


def _train_rate(
    cfg: BenchConfig, model: torch.nn.Module, next_batch: Callable, loss_fn: Callable, lr: float, wd: float
) -> float:
    """Images per second of forward + backward + AdamW step, after two warm-up steps.

    `next_batch()` gives (inputs, targets) on the device; whatever it does is timed with the step.
    """
    model.to(cfg.dev, memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd, fused=True)
    seen, start = 0, 0.0
    for step in range(2 + cfg.steps):
        if step == 2:
            cfg.sync()
            start, seen = time.perf_counter(), 0
        x, y = next_batch()
        with cfg.autocast(cfg.train_precision, training=True):
            logits = model(x)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(x)
    cfg.sync()
    return seen / (time.perf_counter() - start)


def _bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, y.float())


def _e2e_model(enc):
    from mitobench.train.modes import ModeOptions, get_mode

    return get_mode("e2e").classifier(enc, ModeOptions())


class TrainReference(Measurement):
    name = "train/reference"

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        import reference_pipeline as ref

        train, _ = cfg.data()
        enc = cfg.encoder()
        model = torch.nn.Sequential(enc.network, torch.nn.Linear(enc.embed_dim, 1)).to(cfg.dev)
        paths, labels = [str(p) for p in train.paths], train.labels.tolist()
        mean, std = enc.transform.mean, enc.transform.std
        ips = ref.train_throughput(
            model, paths, labels, mean, std, steps=cfg.steps * 4, workers=2, size=cfg.size
        )
        return {"images_per_second": ips}


class TrainOurs(Measurement):
    name = "train/ours"

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        from mitobench.recipes.config import train_config
        from mitobench.train.batches import ImageBatches
        from mitobench.train.losses import binary_loss

        train, _, images = cfg.images()
        settings = {"input_size": cfg.size, "precision": cfg.train_precision, "batch_size": cfg.train_batch}
        recipe = train_config("e2e", "cpu", settings)
        enc = cfg.encoder()
        data = ImageBatches(images, train.labels, enc, recipe.augment, True, cfg.dev)
        g = torch.Generator().manual_seed(0)
        weights = torch.from_numpy(1.0 / np.bincount(train.labels)[train.labels])

        def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
            idx = torch.multinomial(weights, recipe.batch_size, replacement=True, generator=g).numpy()
            return data.get(idx, g), torch.from_numpy(train.labels[idx]).to(cfg.dev)

        def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return binary_loss(logits, y, recipe, None)

        ips = _train_rate(cfg, _e2e_model(enc), next_batch, loss_fn, recipe.lr, recipe.weight_decay)
        return {"images_per_second": ips}


class TrainBare(Measurement):
    """The limit for (b): forward, backward and step of the same model on one pre-made batch."""

    name = "train/bare"

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        enc = cfg.encoder()
        x = torch.randn(cfg.train_batch, 3, cfg.size, cfg.size, device=cfg.dev)
        x = x.contiguous(memory_format=torch.channels_last)
        y = torch.arange(cfg.train_batch, device=cfg.dev) % 2
        return {
            "images_per_second": _train_rate(cfg, _e2e_model(enc), lambda: (x, y), _bce, lr=1e-4, wd=1e-2)
        }


def _infer_images(cfg: BenchConfig) -> np.ndarray:
    _, _, images = cfg.images()
    reps = -(-cfg.infer_images // len(images))
    return np.concatenate([images] * reps)[: cfg.infer_images]


class InferBare(Measurement):
    """The limit for (c): the network ours runs (BatchNorm folded) on one pre-made batch."""

    name = "infer/bare"
    folded: ClassVar[bool] = True

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        from mitobench.models.fusion import inference_copy
        from mitobench.train.precision import inference_batch

        images = _infer_images(cfg)
        enc = cfg.encoder()
        batch = min(inference_batch(64, cfg.size, cfg.dev), len(images))  # the chunk size our pipeline uses
        x = enc.prepare(torch.from_numpy(images[:batch])).contiguous(memory_format=torch.channels_last)
        net = (inference_copy(enc, x[:2]) if self.folded else enc.eval()).to(
            memory_format=torch.channels_last
        )
        n_batches = len(images) // batch
        with torch.inference_mode(), cfg.autocast(cfg.precision):
            net(x)
            cfg.sync()
            start = time.perf_counter()
            for _ in range(n_batches):
                net(x)
            cfg.sync()
        return {"images_per_second": n_batches * batch / (time.perf_counter() - start), "batch": batch}


class InferBarePlain(InferBare):
    """For reference: the timm module as built (BatchNorm separate) on one pre-made batch."""

    name, folded = "infer/bare-plain", False


class InferOurs(Measurement):
    name = "infer/ours"

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        from mitobench.recipes.config import train_config
        from mitobench.train.batches import ImageBatches
        from mitobench.train.loop import predict_probs
        from mitobench.train.model import Classifier

        images = _infer_images(cfg)
        images = images[: (len(images) // 64) * 64]
        enc = cfg.encoder()
        model = Classifier(enc, enc.embed_dim).to(cfg.dev, memory_format=torch.channels_last)
        recipe = train_config(
            "e2e", "cpu", {"input_size": cfg.size, "precision": cfg.precision, "eval_batch_size": 64}
        )

        def batches(x: np.ndarray) -> ImageBatches:
            return ImageBatches(x, np.zeros(len(x), dtype=np.int64), enc, [], True, cfg.dev)

        predict_probs(model, batches(images[:64]), recipe, cfg.dev)  # warm-up
        start = time.perf_counter()
        predict_probs(model, batches(images), recipe, cfg.dev)
        return {"images_per_second": len(images) / (time.perf_counter() - start)}


class InferReference(Measurement):
    name = "infer/reference"

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        import reference_pipeline as ref

        train, _ = cfg.data()
        enc = cfg.encoder()
        tf = ref.eval_transform(enc.transform.mean, enc.transform.std, cfg.size)
        paths = [str(p) for p in train.paths][: min(len(train), cfg.infer_images // 4)]
        ref.extract_batch1(enc.network, paths[:8], tf)
        start = time.perf_counter()
        ref.extract_batch1(enc.network, paths, tf)
        return {"images_per_second": len(paths) / (time.perf_counter() - start)}


def _train_auto(cfg: BenchConfig):
    """What `auto` trains the e2e model in here, as the training loop decides it: the table, and
    where it says bf16 on a CPU this machine's kept race (`precision_race`)."""
    from mitobench.recipes.config import train_config
    from mitobench.train.precision_race import training_choice

    recipe = train_config("e2e", "cpu", {"input_size": cfg.size, "batch_size": cfg.train_batch})
    recipe = recipe.model_copy(update={"precision": "auto"})
    model = _e2e_model(cfg.encoder()).to(cfg.dev, memory_format=torch.channels_last)
    return training_choice(model, recipe, cfg.dev)


class PrecisionSpeed(Measurement):
    """fp32 and bf16 side by side (bare forward, bare training step) and what `auto` chose here."""

    name, once = "precision/speed", True

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        from mitobench.train.precision import resolve

        out: dict[str, Any] = {}
        native = resolve("auto", cfg.dev).name == "bf16" or cfg.dev.type == "cuda"
        for precision in ("fp32", "bf16"):
            c = replace(cfg, precision=precision, train_precision=precision)
            if cfg.n is not None and precision == "bf16" and not native:
                # quick mode on a CPU that emulates bf16 (10-15x slower): the path, on a few images
                c = replace(c, infer_images=min(cfg.infer_images, 16), steps=1)
            out[f"infer_{precision}"] = InferBare().run(c)["images_per_second"]
            out[f"train_{precision}"] = TrainBare().run(
                replace(c, steps=min(c.steps, max(3, cfg.steps // 3)))
            )["images_per_second"]
        for kind, training in (("infer", False), ("train", True)):
            choice = _train_auto(cfg) if training else resolve("auto", cfg.dev)
            fastest = max(out[f"{kind}_fp32"], out[f"{kind}_bf16"])
            out[f"{kind}_auto"] = choice.name
            out[f"{kind}_auto_reason"] = choice.reason
            out[f"{kind}_auto_within_10pct"] = out[f"{kind}_{choice.name}"] >= 0.9 * fastest
        return out


class PrecisionCheck(Measurement):
    """The same trained fold models scored on the AMi-Br test split in fp32 and in bf16."""

    name = "precision"

    def run(self, cfg: BenchConfig) -> dict[str, Any]:
        from mitobench.data.cache import ImageCache
        from mitobench.data.registry import load
        from mitobench.inference.predictor import from_run
        from mitobench.metrics.binary import compute

        test = load("amibr/test", Path(cfg.data_root))
        images = ImageCache().load(test)
        predictor = from_run(Path(cfg.precision_run))
        out: dict[str, Any] = {"run": cfg.precision_run}
        for precision in ("fp32", "bf16"):
            # both: a run may score at another precision than it trained (inference_precision)
            update = {"precision": precision, "inference_precision": None}
            predictor.cfg = predictor.cfg.model_copy(update=update)
            start = time.perf_counter()
            probs = predictor.fold_probs(images)
            seconds = time.perf_counter() - start
            per_fold = [
                compute(test.labels, p, predictor.thresholds[k])["balanced_accuracy"]
                for k, p in probs.items()
            ]
            out[precision] = {"per_fold": per_fold, "mean": float(np.mean(per_fold)), "seconds": seconds}
        return out


MEASUREMENTS: dict[str, Measurement] = {
    m.name: m
    for m in (
        ProbeReference(), ProbeOurs(), TrainReference(), TrainOurs(), TrainBare(),
        InferReference(), InferOurs(), InferBare(), InferBarePlain(), PrecisionSpeed(), PrecisionCheck(),
    )
}  # fmt: skip
ROUNDS = [n for n in MEASUREMENTS if n != "precision"]


@dataclass(frozen=True)
class Row:
    """One line of the comparison: `ours` against `reference`; `ratio` is numerator / denominator."""

    measure: str
    reference: str
    ours: str
    numerator: str
    denominator: str
    target: str


ROWS = [
    Row(
        "(a) linear probing, 5 folds [s]",
        "probe/reference",
        "probe/ours",
        "probe/reference",
        "probe/ours",
        "≥ 10×",
    ),
    Row("(b) e2e training [img/s]", "train/reference", "train/ours", "train/ours", "train/reference", "≥ 3×"),
    Row(
        "(b) the same, against the bare training step [img/s]",
        "train/bare",
        "train/ours",
        "train/ours",
        "train/bare",
        "(limit: no pipeline beats it)",
    ),
    Row(
        "(c) inference [img/s]", "infer/reference", "infer/ours", "infer/ours", "infer/bare", "≥ 90% of bare"
    ),
    Row(
        "(c) bare forward: BatchNorm folded vs as built [img/s]",
        "infer/bare-plain",
        "infer/bare",
        "infer/bare",
        "infer/bare-plain",
        "(what folding buys)",
    ),
]


def run_measurement(name: str, cfg: BenchConfig) -> dict[str, Any]:
    """`name` in a fresh process; its result with the process's peak RSS."""
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--config",
        json.dumps(asdict(cfg)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _worker(name: str, config: str) -> None:
    from mitobench.allocator import allocator_state, configure_allocator
    from mitobench.machine import configure_threads

    configure_threads()  # the cores this process may use, as the CLI does
    if not name.endswith("reference"):  # ours runs as the command line runs it; the scripts do not
        configure_allocator()
    torch.manual_seed(0)
    result = MEASUREMENTS[name].run(BenchConfig(**json.loads(config)))
    result["malloc"] = allocator_state()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each timing over the runs, the largest peak RSS, and every run as it was."""
    out = dict(runs[0])
    for key in ("seconds", "images_per_second"):
        if key in out:
            out[key] = float(np.median([r[key] for r in runs]))
    out["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    out["runs"] = runs
    return out


def rounds(cfg: BenchConfig, repeat: int) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Every measurement, `repeat` times, the rounds interleaving both sides."""
    for round_ in range(repeat):
        for name in ROUNDS:
            if MEASUREMENTS[name].once and round_ > 0:
                continue
            yield round_, name, run_measurement(name, cfg)


def _value(result: dict[str, Any]) -> float:
    return result.get("seconds") or result["images_per_second"]


def table_rows(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "measure": r.measure,
            "reference": _value(results[r.reference]),
            "ours": _value(results[r.ours]),
            "ratio": _value(results[r.numerator]) / _value(results[r.denominator]),
            "target": r.target,
        }
        for r in ROWS
    ]


def markdown(table: dict[str, Any], results: dict[str, dict[str, Any]]) -> str:
    lines = ["| measure | reference | ours | ratio | target |", "|---|---:|---:|---:|---|"]
    lines += [
        f"| {r['measure']} | {r['reference']:.1f} | {r['ours']:.1f} | {r['ratio']:.2f} | {r['target']} |"
        for r in table["rows"]
    ]
    lines += ["", "| process | peak RSS [MB] |", "|---|---:|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in table["peak_rss_mb"].items()]
    if "precision/speed" in results:
        ps = results["precision/speed"]
        lines += [
            "",
            "| bare, img/s | fp32 | bf16 | auto picks | within 10 % of the faster |",
            "|---|---:|---:|---|---|",
        ]
        lines += [
            f"| {kind} | {ps[f'{kind}_fp32']:.1f} | {ps[f'{kind}_bf16']:.1f} | {ps[f'{kind}_auto']} "
            f"({ps[f'{kind}_auto_reason']}) | {'yes' if ps[f'{kind}_auto_within_10pct'] else 'NO'} |"
            for kind in ("infer", "train")
        ]
    if "precision" in results:
        pr = results["precision"]
        diff = max(abs(a - b) for a, b in zip(pr["fp32"]["per_fold"], pr["bf16"]["per_fold"], strict=True))
        lines += [
            "",
            f"Precision check ({pr['run']}, AMi-Br test, the same fold models): balanced accuracy "
            f"fp32 {pr['fp32']['mean']:.4f}, bf16 {pr['bf16']['mean']:.4f} (fold mean); largest per-fold "
            f"difference {diff:.4f}; inference {pr['fp32']['seconds']:.0f} s "
            f"vs {pr['bf16']['seconds']:.0f} s",
        ]
    return "\n".join(lines)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    d = BenchConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", default=d.data_root)
    p.add_argument("--quick", action="store_true", help="a smoke test on a few images, under a minute")
    p.add_argument("--size", type=int, default=d.size, help="network input side (the paper's 224)")
    p.add_argument("--model", default=d.model, help="any registered or timm model (default: %(default)s)")
    p.add_argument("--device", default=d.device, help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument(
        "--random-init", action="store_true", help="random weights of the same architecture (speed only)"
    )
    p.add_argument(
        "--precision", choices=["auto", "fp32", "bf16"], default=d.precision, help="inference and extraction"
    )
    p.add_argument(
        "--train-precision",
        choices=["auto", "fp32", "bf16"],
        default=d.train_precision,
        help="training (auto: bf16 where the hardware has it natively, else fp32)",
    )
    p.add_argument(
        "--train-batch",
        type=int,
        default=d.train_batch,
        help="our training batch (16 is the fastest at 224 px on the 2-core EPYC; the reference uses 8)",
    )
    p.add_argument(
        "--precision-run",
        default=d.precision_run,
        help="a finished run whose fold models are scored in fp32 and bf16",
    )
    p.add_argument(
        "--repeat", type=int, default=3, help="rounds over all measurements (medians are reported)"
    )
    p.add_argument("--skip-precision", action="store_true", help="skip the fp32-vs-bf16 accuracy check")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results.json"))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    return p.parse_args(argv)  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.worker:
        _worker(args.worker, args.config)
        return
    cfg = BenchConfig(
        data_root=args.data_root, model=args.model, device=args.device, random_init=args.random_init,
        size=args.size, precision=args.precision, train_precision=args.train_precision,
        train_batch=args.train_batch, precision_run=args.precision_run,
    )  # fmt: skip
    if args.quick:
        cfg = replace(cfg, n=48, steps=3, head_epochs=2, infer_images=64)
        if args.model == MODEL:  # a CNN takes the native 128 px (a ViT keeps its fixed input size)
            cfg = replace(cfg, size=128)
    repeat = 1 if args.quick else args.repeat
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in ROUNDS}
    for round_, name, result in rounds(cfg, repeat):
        samples[name].append(result)
        print(f"  [{round_ + 1}/{repeat}] {name}: {result}", file=sys.stderr)
    results = {name: _median_of(runs) for name, runs in samples.items()}
    if not args.quick and not args.skip_precision and (Path(cfg.precision_run) / "run.json").is_file():
        results["precision"] = run_measurement("precision", cfg)
    from mitobench import machine

    table = {
        "machine": {**machine.describe(), "label": machine.label()},
        **asdict(cfg),
        "device": str(cfg.dev),
        "input_size": cfg.size,
        "quick": args.quick,
        "repeat": repeat,
        "rows": table_rows(results),
        "peak_rss_mb": {k: v["peak_rss_mb"] for k, v in results.items() if "peak_rss_mb" in v},
        "raw": results,
    }
    text = f"Measured on {table['machine']['label']}.\n\n" + markdown(table, results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**table, "markdown": text}, indent=1))


if __name__ == "__main__":
    main()
