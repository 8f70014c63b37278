"""The one training loop (e2e, LoRA and the torch probe): resumable, seeded, early-stopped."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mitobench.errors import MitobenchError
from mitobench.metrics.binary import best_threshold, selection_score
from mitobench.models.fusion import inference_copy
from mitobench.paths import atomic_path
from mitobench.progress import NullProgress, Progress
from mitobench.train.batches import ImageBatches
from mitobench.train.config import TrainConfig
from mitobench.train.losses import binary_loss
from mitobench.train.model import Classifier, load_trainable_state, trainable_state
from mitobench.train.precision import Choice, autocast, inference_batch, resolve
from mitobench.train.rundir import FoldDir


class Batches(Protocol):
    labels: np.ndarray
    targets: np.ndarray | None
    """Training targets in [0, 1] other than `labels` (e.g. the experts' vote share), or None."""

    def __len__(self) -> int: ...

    def get(
        self, idx: np.ndarray, g: torch.Generator | None = None, dihedral_code: int | None = None
    ) -> torch.Tensor: ...


class TrainingDiverged(MitobenchError):
    """The loss became NaN or infinite."""


@dataclass
class FitResult:
    best_epoch: int
    best_score: float
    threshold: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    precision: dict[str, object] = field(default_factory=dict)
    """What `precision` and `inference_precision` became on this hardware, and why."""


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _choice(model: torch.nn.Module, cfg: TrainConfig, dev: torch.device, inference: bool = False) -> Choice:
    """The precision used; a head on cached embeddings stays fp32 (casting it only costs time)."""
    if (
        isinstance(model, Classifier)
        and model.encoder is None
        and not (inference and cfg.scores_heads_in_autocast)
    ):
        return Choice(
            cfg.eval_precision if inference else cfg.precision, None, False, "a head on embeddings: fp32"
        )
    if inference:
        return resolve(cfg.eval_precision, dev)
    return resolve(cfg.precision, dev, training=True, size=cfg.side)


def _compute_dtype(
    model: torch.nn.Module, cfg: TrainConfig, dev: torch.device, inference: bool = False
) -> torch.dtype | None:
    """The autocast dtype of `_choice`."""
    return _choice(model, cfg, dev, inference).dtype


@torch.inference_mode()
def batched_outputs(
    module: torch.nn.Module,
    n: int,
    get: Callable[[np.ndarray], torch.Tensor],
    batch: int,
    dtype: torch.dtype | None,
    dev: torch.device,
    progress: Progress,
) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
    """(indices, output) chunk by chunk: the one inference loop (predictions and embeddings).

    The module runs as a copy with BatchNorm folded into its convolutions, checked on the first
    chunk; `get(indices)` makes each chunk's input on `dev`.
    """
    fast: torch.nn.Module | None = None
    for start in range(0, n, batch):
        idx = np.arange(start, min(n, start + batch))
        x = get(idx)
        if fast is None:
            fast = inference_copy(module, x[:2])
        with autocast(dtype, dev):
            out = fast(x)
        progress.advance(len(idx))
        yield idx, out


def predict_probs(
    model: torch.nn.Module,
    data: Batches,
    cfg: TrainConfig,
    dev: torch.device,
    tta: bool = False,
    progress: Progress | None = None,
    description: str = "predicting",
) -> np.ndarray:
    """Probabilities of the atypical class; with `tta`, the mean over the 8 dihedral transforms."""
    model.eval()
    dtype = _compute_dtype(model, cfg, dev, inference=True)
    progress = progress or NullProgress()
    n = len(data)
    codes = list(range(8)) if tta else [None]
    out = np.zeros(n, dtype=np.float64)
    progress.start(description, n * len(codes))
    batch = cfg.eval_batch_size
    if isinstance(data, ImageBatches):
        batch = inference_batch(batch, data.input_size, dev)
    for code in codes:
        chunks = batched_outputs(
            model, n, lambda idx, c=code: data.get(idx, dihedral_code=c), batch, dtype, dev, progress
        )
        for idx, logits in chunks:
            out[idx] += torch.sigmoid(logits.float()).cpu().numpy()
    progress.finish()
    return out / len(codes)


def _make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    if cfg.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr
        )
    total = max(1, cfg.max_epochs * steps_per_epoch)
    warm = int(cfg.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total - warm)
        return max(cfg.min_lr / cfg.lr, 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    groups = [{"params": body, "lr": cfg.lr}] if body else []
    groups.append({"params": head, "lr": cfg.lr * cfg.head_lr_scale})
    cls = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
    return cls(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def _score(labels: np.ndarray, probs: np.ndarray, cfg: TrainConfig) -> tuple[float, float]:
    threshold = best_threshold(labels, probs) if cfg.threshold == "tune" else cfg.fixed_threshold
    return selection_score(cfg.selection, labels, probs, threshold), threshold


def _ema(model: torch.nn.Module, cfg: TrainConfig) -> AveragedModel | None:
    """An exponential moving average of the weights (BatchNorm statistics included), or None."""
    if cfg.ema_decay is None:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)


def _step(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> None:
    """One optimiser step; an enabled scaler scales the loss and skips steps with inf/NaN gradients."""
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()


def fit(
    model: torch.nn.Module,
    train: Batches,
    val: Batches,
    cfg: TrainConfig,
    fold: FoldDir,
    dev: torch.device,
    progress: Progress | None = None,
    stop_after_epochs: int | None = None,
) -> FitResult:
    """Train with the configured recipe, keeping the best epoch by validation score.

    State is written atomically after every epoch, so an interrupted fit resumes where it
    stopped and ends identical to an uninterrupted one. `stop_after_epochs` ends this call
    early (as an interruption would) and is for tests.
    """
    progress = progress or NullProgress()
    fold.path.mkdir(parents=True, exist_ok=True)
    if fold.is_fitted():
        load_trainable_state(model, load_file(str(fold.best)))
        return FitResult(**fold.read_fit())
    seed_everything(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    labels = train.labels
    n = len(labels)
    epoch_size = cfg.epoch_size or n
    bs = cfg.batch_size
    steps = max(1, epoch_size // bs if cfg.drop_last else math.ceil(epoch_size / bs))
    draws = steps * bs if cfg.drop_last else epoch_size  # the reference runs the partial batch
    opt = _optimizer(model, cfg)
    sched = _make_scheduler(opt, cfg, steps)
    counts = np.bincount(labels, minlength=2).astype(np.float64)
    sample_w = torch.from_numpy((1.0 / np.maximum(counts, 1))[labels])
    pos_weight = float(counts[0] / max(counts[1], 1)) if cfg.balance == "loss" else None
    choice = _choice(model, cfg, dev)
    dtype = choice.dtype
    scaler = torch.amp.GradScaler(dev.type, enabled=choice.scaler)
    used = {"train": choice.record(), "inference": _choice(model, cfg, dev, inference=True).record()}
    ema = _ema(model, cfg)
    targets = train.targets if train.targets is not None else labels
    state = {
        "epoch": 0,
        "best_score": -math.inf,
        "best_epoch": -1,
        "epochs_without_improvement": 0,
        "threshold": 0.5,
        "history": [],
    }
    last = fold.last
    if last.is_file():
        saved = torch.load(last, map_location="cpu", weights_only=False)
        load_trainable_state(model, saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sched.load_state_dict(saved["scheduler"])
        g.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        if ema is not None:
            ema.load_state_dict(saved["ema"])
        if saved.get("scaler"):
            scaler.load_state_dict(saved["scaler"])
        state = saved["state"]
    run_epochs = 0
    while state["epoch"] < cfg.max_epochs:
        if stop_after_epochs is not None and run_epochs >= stop_after_epochs:
            break
        epoch = state["epoch"]
        epoch_started = time.perf_counter()
        model.train()
        if cfg.balance == "sampler":
            order = torch.multinomial(sample_w, draws, replacement=True, generator=g).numpy()
        else:
            order = torch.randperm(n, generator=g).repeat(math.ceil(draws / n))[:draws].numpy()
        progress.start(f"epoch {epoch + 1}/{cfg.max_epochs}", steps)
        total_loss = 0.0
        for s in range(steps):
            idx = order[s * bs : (s + 1) * bs]
            x = train.get(idx, g).to(dev)
            y = torch.from_numpy(targets[idx]).to(dev)
            with autocast(dtype, dev):
                logits = model(x)
            loss = binary_loss(logits.float(), y, cfg, pos_weight)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {s + 1}",
                    "lower the learning rate, or use precision fp32 / bf16 instead of fp16",
                )
            _step(loss, opt, scaler)
            if cfg.schedule == "cosine":
                sched.step()
            if ema is not None:
                ema.update_parameters(model)
            total_loss += float(loss.detach())
            progress.advance()
        progress.finish()
        scored = ema.module if ema is not None else model  # the weights a fold keeps
        probs = predict_probs(scored, val, cfg, dev, progress=progress, description="validating")
        score, threshold = _score(val.labels, probs, cfg)
        if cfg.schedule == "plateau":
            sched.step(score)
        state["history"].append(
            {
                "epoch": epoch + 1,
                "loss": total_loss / steps,
                "val_score": score,
                "lr": opt.param_groups[0]["lr"],
            }
        )
        if score > state["best_score"]:
            state.update(
                best_score=score, best_epoch=epoch + 1, epochs_without_improvement=0, threshold=threshold
            )
            with atomic_path(fold.best) as tmp:
                save_file(trainable_state(scored), str(tmp))
        else:
            state["epochs_without_improvement"] += 1
        state["epoch"] = epoch + 1
        state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - epoch_started
        run_epochs += 1
        patience = cfg.early_stopping_patience
        stop = patience is not None and state["epochs_without_improvement"] >= patience
        if stop:
            state["epoch"] = cfg.max_epochs
        with atomic_path(last) as tmp:
            torch.save(
                {
                    "model": trainable_state(model),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "generator": g.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "ema": ema.state_dict() if ema is not None else None,
                    "scaler": scaler.state_dict() if scaler.is_enabled() else None,
                    "state": state,
                },
                tmp,
            )
    if state["epoch"] < cfg.max_epochs:  # stopped early on request: resumable, not done
        return FitResult(
            state["best_epoch"],
            state["best_score"],
            state["threshold"],
            state["epoch"],
            state["history"],
            precision=used,
        )
    load_trainable_state(model, load_file(str(fold.best)))
    result = FitResult(
        best_epoch=state["best_epoch"],
        best_score=float(state["best_score"]),
        threshold=float(state["threshold"]),
        epochs_run=len(state["history"]),
        history=state["history"],
        seconds=state.get("seconds", 0.0),
        precision=used,
    )
    fold.write_fit(result.__dict__)
    last.unlink(missing_ok=True)
    return result
