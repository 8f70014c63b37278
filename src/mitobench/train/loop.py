"""The one training loop (e2e, LoRA and the torch probe): resumable, seeded, early-stopped."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Protocol

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from scipy.special import betaincinv
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from mitobench.errors import MitobenchError
from mitobench.metrics.binary import best_threshold, selection_score
from mitobench.models.fusion import inference_copy
from mitobench.paths import atomic_path
from mitobench.progress import NullProgress, Progress
from mitobench.recipes.config import ModeOptions, TrainConfig
from mitobench.runs.rundir import FoldDir
from mitobench.train.batches import ImageBatches
from mitobench.train.losses import binary_loss
from mitobench.train.model import Classifier, load_trainable_state, trainable_state
from mitobench.train.precision import Choice, autocast, inference_batch, resolve
from mitobench.train.precision_race import training_choice


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
    best_score: float | None
    """The kept epoch's validation score; None when nothing was held out (all figures)."""
    threshold: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    precision: dict[str, dict[str, object]] = field(default_factory=dict)
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
    return training_choice(model, cfg, dev)


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
        chunks = batched_outputs(model, n, partial(data.get, dihedral_code=code), batch, dtype, dev, progress)
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


@dataclass(frozen=True)
class FitContext:
    """Everything one fold's fit reads besides the model: its data, recipe, folder and device."""

    train: Batches
    val: Batches
    cfg: TrainConfig
    fold: FoldDir
    dev: torch.device
    options: ModeOptions = field(default_factory=ModeOptions)
    progress: Progress = field(default_factory=NullProgress)
    stop_after_epochs: int | None = None
    """End this call early, as an interruption would (for tests)."""


@dataclass
class FitState:
    """Where a fit stands after an epoch; saved in `last.pt` (as a dict) so a fit resumes."""

    epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = -1
    epochs_without_improvement: int = 0
    threshold: float = 0.5
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def finished(self, cfg: TrainConfig) -> bool:
        return self.epoch >= cfg.max_epochs

    def record(self, row: dict[str, float], score: float | None, threshold: float, cfg: TrainConfig) -> bool:
        """Account for one epoch; True when it is the best so far (its weights are to be kept).
        Without a score (nothing held out) the latest epoch is the one kept."""
        self.history.append(row)
        self.epoch = int(row["epoch"])
        improved = score is None or score > self.best_score
        if improved:
            self.best_score = math.nan if score is None else score
            self.best_epoch, self.threshold = self.epoch, threshold
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        patience = cfg.early_stopping_patience
        if patience is not None and self.epochs_without_improvement >= patience:
            self.epoch = cfg.max_epochs  # early stop: the fit is finished
        return improved

    def result(self, precision: dict[str, dict[str, object]]) -> FitResult:
        return FitResult(
            best_epoch=self.best_epoch,
            best_score=None if math.isnan(self.best_score) else float(self.best_score),
            threshold=float(self.threshold),
            epochs_run=len(self.history),
            history=self.history,
            seconds=self.seconds,
            precision=precision,
        )


@dataclass
class _Session:
    """The optimiser, schedule, random generator, EMA and loss scaler of one fit, and how they are
    saved after each epoch and restored on resume."""

    model: torch.nn.Module
    ctx: FitContext
    choice: Choice
    opt: torch.optim.Optimizer = field(init=False)
    sched: torch.optim.lr_scheduler.LRScheduler = field(init=False)
    g: torch.Generator = field(init=False)
    ema: AveragedModel | None = field(init=False)
    scaler: torch.amp.GradScaler = field(init=False)
    steps: int = field(init=False)
    draws: int = field(init=False)
    pos_weight: float | None = field(init=False)
    """The loss's positive-class weight (`balance: loss`), from the training labels once."""

    def __post_init__(self) -> None:
        cfg, n = self.ctx.cfg, len(self.ctx.train.labels)
        epoch_size, bs = cfg.epoch_size or n, cfg.batch_size
        self.steps = max(1, epoch_size // bs if cfg.drop_last else math.ceil(epoch_size / bs))
        self.draws = self.steps * bs if cfg.drop_last else epoch_size  # the reference runs the partial batch
        self.pos_weight = _pos_weight(self.ctx.train.labels, cfg)
        self.g = torch.Generator().manual_seed(cfg.seed)
        self.opt = _optimizer(self.model, cfg)
        self.sched = _make_scheduler(self.opt, cfg, self.steps)
        self.ema = _ema(self.model, cfg)
        self.scaler = torch.amp.GradScaler(self.ctx.dev.type, enabled=self.choice.scaler)

    @property
    def kept(self) -> torch.nn.Module:
        """The weights a fold keeps and validates: the EMA's where there is one."""
        return self.ema.module if self.ema is not None else self.model

    def resume(self) -> FitState:
        if not self.ctx.fold.last.is_file():
            return FitState()
        saved = torch.load(self.ctx.fold.last, map_location="cpu", weights_only=False)
        load_trainable_state(self.model, saved["model"])
        self.opt.load_state_dict(saved["optimizer"])
        self.sched.load_state_dict(saved["scheduler"])
        self.g.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        if self.ema is not None:
            self.ema.load_state_dict(saved["ema"])
        if saved.get("scaler"):
            self.scaler.load_state_dict(saved["scaler"])
        return FitState(**saved["state"])

    def checkpoint(self, state: FitState) -> None:
        with atomic_path(self.ctx.fold.last) as tmp:
            torch.save(
                {
                    "model": trainable_state(self.model),
                    "optimizer": self.opt.state_dict(),
                    "scheduler": self.sched.state_dict(),
                    "generator": self.g.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "ema": self.ema.state_dict() if self.ema is not None else None,
                    "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                    "state": asdict(state),
                },
                tmp,
            )

    def train_epoch(self, epoch: int) -> float:
        """One epoch of optimiser steps; the mean training loss."""
        ctx, cfg = self.ctx, self.ctx.cfg
        labels = ctx.train.labels
        targets = ctx.train.targets if ctx.train.targets is not None else labels
        self.model.train()
        order = _draw_order(labels, self.draws, cfg, self.g)
        ctx.progress.start(f"epoch {epoch + 1}/{cfg.max_epochs}", self.steps)
        total = 0.0
        bs = cfg.batch_size
        for s in range(self.steps):
            idx = order[s * bs : (s + 1) * bs]
            x = ctx.train.get(idx, self.g).to(ctx.dev)
            y = torch.from_numpy(targets[idx]).to(ctx.dev)
            if cfg.mixup_alpha:
                x, y = mixup(x, y, cfg.mixup_alpha, self.g)
            with autocast(self.choice.dtype, ctx.dev):
                logits = self.model(x)
            loss = binary_loss(logits.float(), y, cfg, self.pos_weight)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {loss.item()} at epoch {epoch + 1}, step {s + 1}",
                    "lower the learning rate, or use precision fp32 / bf16 instead of fp16",
                )
            _step(loss, self.opt, self.scaler)
            if cfg.schedule == "cosine":
                self.sched.step()
            if self.ema is not None:
                self.ema.update_parameters(self.model)
            total += float(loss.detach())
            ctx.progress.advance()
        ctx.progress.finish()
        return total / self.steps


def mixup(
    x: torch.Tensor, y: torch.Tensor, alpha: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch mixed with a permutation of itself by one λ ~ Beta(alpha, alpha), images and
    targets alike (Zhang et al. 2018); drawn from `g`, so a resumed fit mixes as an unbroken one."""
    lam = float(betaincinv(alpha, alpha, torch.rand((), generator=g, dtype=torch.float64).item()))
    perm = torch.randperm(len(x), generator=g).to(x.device)
    y = y.double()
    return lam * x + (1 - lam) * x[perm], (lam * y + (1 - lam) * y[perm]).float()


def _draw_order(labels: np.ndarray, draws: int, cfg: TrainConfig, g: torch.Generator) -> np.ndarray:
    """The epoch's sample order: class-balanced draws with replacement (the reference's
    WeightedRandomSampler), or shuffled passes."""
    if cfg.balance == "sampler":
        counts = np.bincount(labels, minlength=2).astype(np.float64)
        weights = torch.from_numpy((1.0 / np.maximum(counts, 1))[labels])
        return torch.multinomial(weights, draws, replacement=True, generator=g).numpy()
    n = len(labels)
    return torch.randperm(n, generator=g).repeat(math.ceil(draws / n))[:draws].numpy()


def _pos_weight(labels: np.ndarray, cfg: TrainConfig) -> float | None:
    if cfg.balance != "loss":
        return None
    counts = np.bincount(labels, minlength=2)
    return float(counts[0] / max(counts[1], 1))


def fit(model: torch.nn.Module, ctx: FitContext) -> FitResult:
    """Train with the configured recipe, keeping the best epoch by validation score.

    State is written atomically after every epoch, so an interrupted fit resumes where it
    stopped and ends identical to an uninterrupted one.
    """
    cfg, fold = ctx.cfg, ctx.fold
    fold.path.mkdir(parents=True, exist_ok=True)
    if fold.is_fitted():
        load_trainable_state(model, load_file(str(fold.best)))
        return FitResult(**fold.read_fit())
    seed_everything(cfg.seed)
    session = _Session(model, ctx, _choice(model, cfg, ctx.dev))
    used = {
        "train": session.choice.record(),
        "inference": _choice(model, cfg, ctx.dev, inference=True).record(),
    }
    state = session.resume()
    run_epochs = 0
    while not state.finished(cfg):
        if ctx.stop_after_epochs is not None and run_epochs >= ctx.stop_after_epochs:
            return state.result(used)  # stopped early on request: resumable, not done
        epoch, started = state.epoch, time.perf_counter()
        loss = session.train_epoch(epoch)
        row = {"epoch": epoch + 1, "loss": loss}
        score: float | None = None  # nothing held out (an all-figures model): every epoch is kept
        threshold = cfg.fixed_threshold
        if len(ctx.val):
            probs = predict_probs(
                session.kept, ctx.val, cfg, ctx.dev, progress=ctx.progress, description="validating"
            )
            score, threshold = _score(ctx.val.labels, probs, cfg)
            row["val_score"] = score
            if cfg.schedule == "plateau":
                session.sched.step(score)  # type: ignore[arg-type]  # ReduceLROnPlateau takes the metric
        row["lr"] = session.opt.param_groups[0]["lr"]  # after a plateau step, as it will train on
        if state.record(row, score, threshold, cfg):
            with atomic_path(fold.best) as tmp:
                save_file(trainable_state(session.kept), str(tmp))
        state.seconds += time.perf_counter() - started
        run_epochs += 1
        session.checkpoint(state)
    load_trainable_state(model, load_file(str(fold.best)))
    result = state.result(used)
    fold.write_fit(result.__dict__)
    fold.last.unlink(missing_ok=True)
    return result
