"""One run: a model in one mode, trained on each requested AMi-Br fold, evaluated on the test sets."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mitobench import __version__
from mitobench.data.cache import ImageCache
from mitobench.data.dataset import Dataset
from mitobench.data.registry import DATASETS, EVAL_SETS, load, present
from mitobench.data.splits import N_FOLDS, SplitName, assign_folds, fold_split, split_record
from mitobench.errors import ConfigError
from mitobench.evaluate.results import set_file, write_predictions, write_summary
from mitobench.models.builder import build
from mitobench.models.encoder import Encoder
from mitobench.paths import atomic_write_text
from mitobench.progress import NullProgress, Progress
from mitobench.train.batches import EmbeddingBatches, ImageBatches
from mitobench.train.config import (
    LoraConfig,
    Mode,
    PresetName,
    ProbeConfig,
    TrainConfig,
    first_error,
    train_config,
)
from mitobench.train.embeddings import EmbeddingCache
from mitobench.train.loop import fit, predict_probs, seed_everything
from mitobench.train.model import Classifier, make_classifier
from mitobench.train.precision import device


class RunSpec(BaseModel):
    """What to run; everything else comes from the preset. Saved as `run.json`."""

    model_config = ConfigDict(extra="forbid")
    model: str
    mode: Mode = "e2e"
    preset: PresetName = "paper"
    split: SplitName = "paper"
    """`paper`: the reference's folds on every scikit-learn; `sklearn`: the installed release's."""
    folds: list[int] = Field(default_factory=lambda: list(range(N_FOLDS)))
    eval_sets: list[str] = Field(default_factory=lambda: list(EVAL_SETS))
    weights: str | None = None
    """Local weight file or folder (hub layout); None uses the model's default source."""
    train: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the preset's training settings (see TrainConfig)."""
    lora: LoraConfig = Field(default_factory=LoraConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)

    def resolved(self) -> TrainConfig:
        return train_config(self.mode, self.preset, self.train, model=self.model)


def parse_spec(values: dict[str, Any]) -> RunSpec:
    try:
        spec = RunSpec.model_validate(values)
    except ValidationError as exc:
        raise ConfigError(
            f"invalid run settings: {first_error(exc)}", "fix the config or command-line options"
        ) from None
    bad = [k for k in spec.folds if not 0 <= k < N_FOLDS]
    if bad:
        raise ConfigError(f"fold {bad[0]} does not exist", f"folds are 0..{N_FOLDS - 1}")
    spec.resolved()
    return spec


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    trained_folds: list[int] = field(default_factory=list)
    skipped_sets: list[str] = field(default_factory=list)
    embedding_cache: dict[str, int] = field(default_factory=dict)


def environment() -> dict[str, str]:
    import timm

    return {
        "mitobench": __version__,
        "torch": torch.__version__,
        "timm": timm.__version__,
        "python": platform.python_version(),
        "device": str(device()),
        "cpu_threads": str(torch.get_num_threads()),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "",
    }


def _check_run_dir(run_dir: Path, spec: RunSpec, cfg: TrainConfig, folds: dict[str, str]) -> None:
    """Write run.json, or check that the run already there is this one, on the same folds."""
    record = {"spec": spec.model_dump(mode="json"), "train_config": cfg.model_dump(mode="json")}
    path = run_dir / "run.json"
    if path.is_file():
        old = json.loads(path.read_text())
        # which folds to train now is not part of a run's identity: jobs add folds to one run
        old_spec = {k: v for k, v in old.get("spec", {}).items() if k != "folds"}
        new_spec = {k: v for k, v in record["spec"].items() if k != "folds"}
        if old_spec != new_spec or old.get("train_config") != record["train_config"]:
            raise ConfigError(
                f"{run_dir} holds a different run (its run.json differs)",
                "choose another output directory, or delete that one to start over",
            )
        old_folds = old.get("folds", {}).get("sha256")
        if old_folds != folds["sha256"]:
            made = old.get("folds", {}).get("sklearn", "an unrecorded scikit-learn")
            raise ConfigError(
                f"{run_dir} was trained on other folds (made with scikit-learn {made}; "
                f"these are the {folds['split']!r} folds under {folds['sklearn']})",
                "resume it where it was made, or train into a new directory",
            )
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        path,
        json.dumps(
            {**record, "folds": folds, "environment": environment(), "created": time.time()}, indent=1
        ),
    )


def load_run_spec(run_dir: Path) -> tuple[RunSpec, TrainConfig]:
    path = run_dir / "run.json"
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not a mitobench run (no run.json)", "pass a directory made by `mitobench train`"
        )
    record = json.loads(path.read_text())
    return saved_settings(record["spec"], record["train_config"], str(path))


def saved_settings(spec: dict[str, Any], cfg: dict[str, Any], where: str) -> tuple[RunSpec, TrainConfig]:
    """A saved run's settings; ones an older mitobench wrote that no longer validate are a user error."""
    try:
        return RunSpec.model_validate(spec), TrainConfig.model_validate(cfg)
    except ValidationError as exc:
        raise ConfigError(
            f"{where} was written by an older mitobench ({first_error(exc)})",
            "retrain it with this version, or use the mitobench version that made it",
        ) from None


def eval_datasets(keys: list[str], data_root: Path) -> tuple[list[Dataset], list[str]]:
    """The evaluation sets present under the data root, and the names of those missing."""
    have = set(present(data_root))
    found, missing = [], []
    for key in keys:
        name = key.split("/")[0].lower()
        if name in DATASETS and name not in have:
            missing.append(key)
        else:
            found.append(load(key, data_root))
    return found, missing


def _build_encoder(
    spec: RunSpec,
    cfg: TrainConfig,
    seed: int,
    pretrained: bool = True,
    overrides: dict[str, Any] | None = None,
) -> Encoder:
    """The run's encoder, with the recipe's input transform and pooling."""
    seed_everything(seed)
    encoder = build(spec.model, weights=spec.weights, pretrained=pretrained, overrides=overrides)
    return encoder.configure(cfg.transform_for(encoder.spec), cfg.pooling_for(encoder.spec))


def train_run(
    spec: RunSpec,
    run_dir: Path,
    data_root: Path,
    progress: Progress | None = None,
    pretrained: bool = True,
    model_overrides: dict[str, Any] | None = None,
    stop_after_epochs: int | None = None,
) -> RunResult:
    """Train and evaluate every requested fold; finished folds are kept, unfinished ones resume.

    `pretrained=False` and `model_overrides` build a random / reduced model (tests).
    """
    progress = progress or NullProgress()
    cfg = spec.resolved()
    train_set = load("amibr/train", data_root)
    folds = assign_folds(train_set, split=spec.split)
    fold_record = split_record(train_set, folds, spec.split)
    _check_run_dir(run_dir, spec, cfg, fold_record)
    if all((run_dir / f"fold_{k}" / "done.json").is_file() for k in spec.folds):
        return RunResult(run_dir, write_summary(run_dir))  # nothing to train or evaluate
    dev = device()
    cache = ImageCache()
    train_images, train_key = cache.load_keyed(train_set, progress)
    evals, missing = eval_datasets(spec.eval_sets, data_root)
    eval_images = {ds.key: cache.load_keyed(ds, progress) for ds in evals}
    result = RunResult(run_dir, {}, skipped_sets=missing)

    images_of = {"train": train_images, **{key: img for key, (img, _) in eval_images.items()}}
    labels_of = {"train": train_set.labels, **{ds.key: ds.labels for ds in evals}}
    embeddings: dict[str, np.ndarray] = {}
    if spec.mode == "probe":
        encoder = _build_encoder(spec, cfg, cfg.seed, pretrained, model_overrides).to(dev)
        ecache = EmbeddingCache()
        for ds, (images, key) in [
            (train_set, (train_images, train_key)),
            *((d, eval_images[d.key]) for d in evals),
        ]:
            name = "train" if ds is train_set else ds.key
            embeddings[name] = ecache.get(
                encoder, ds, images, key, cfg.precision, dev, cfg.eval_batch_size, progress
            )
        result.embedding_cache = {"hits": ecache.hits, "misses": ecache.misses}
        del encoder

    for k in spec.folds:
        fold_dir = run_dir / f"fold_{k}"
        if (fold_dir / "done.json").is_file():
            continue
        tr_idx, va_idx = fold_split(folds, k)
        fold_cfg = cfg.model_copy(update={"seed": cfg.seed + k})
        started = time.perf_counter()
        encoder = None
        if spec.mode == "probe":
            model = Classifier(None, embeddings["train"].shape[1])
        else:
            encoder = _build_encoder(spec, fold_cfg, fold_cfg.seed, pretrained, model_overrides)
            model = make_classifier(encoder, spec.mode, spec.lora)
        model.to(dev)
        cnn = encoder is not None and encoder.spec.pooling.value == "pooled" and fold_cfg.channels_last
        if cnn:
            model.to(memory_format=torch.channels_last)

        def data(
            key: str,
            idx: np.ndarray | None = None,
            train: bool = False,
            _enc: Encoder | None = encoder,
            _cfg: TrainConfig = fold_cfg,
            _cnn: bool = cnn,
        ) -> ImageBatches | EmbeddingBatches:
            labels = labels_of[key] if idx is None else labels_of[key][idx]
            if _enc is None:
                emb = embeddings[key]
                return EmbeddingBatches(emb if idx is None else emb[idx], labels, dev)
            images = images_of[key] if idx is None else images_of[key][idx]
            return ImageBatches(images, labels, _enc, _cfg.augment if train else [], _cnn, dev)

        train_b, val_b = data("train", tr_idx, train=True), data("train", va_idx)
        if spec.mode == "probe" and spec.probe.method == "sklearn":
            fitted = _fit_sklearn(model, train_b, val_b, fold_cfg, spec.probe, fold_dir)
        else:
            fitted = fit(model, train_b, val_b, fold_cfg, fold_dir, dev, progress, stop_after_epochs)
            if not (fold_dir / "fit.json").is_file():
                return result  # stopped early on request (tests): resumable
        preds_dir = fold_dir / "predictions"
        val_probs = predict_probs(model, val_b, fold_cfg, dev, progress=progress, description="validating")
        write_predictions(
            preds_dir / "amibr__val.csv", [train_set.ids[i] for i in va_idx], val_b.labels, val_probs
        )
        for ds in evals:
            batches = data(ds.key)
            probs = predict_probs(
                model, batches, fold_cfg, dev, progress=progress, description=f"evaluating {ds.key}"
            )
            tta = None
            if fold_cfg.tta and encoder is not None:
                tta = predict_probs(
                    model, batches, fold_cfg, dev, tta=True, progress=progress, description=f"TTA {ds.key}"
                )
            write_predictions(preds_dir / set_file(ds.key), ds.ids, ds.labels, probs, tta)
        done = {
            "fold": k,
            "threshold": fitted.threshold,
            "best_epoch": fitted.best_epoch,
            "best_val_score": fitted.best_score,
            "epochs_run": fitted.epochs_run,
            "fit_seconds": fitted.seconds,
            "total_seconds": time.perf_counter() - started,
            "folds_sha256": fold_record["sha256"],
        }
        atomic_write_text(fold_dir / "done.json", json.dumps(done, indent=1))
        result.trained_folds.append(k)
    result.summary = write_summary(run_dir)
    return result


def _fit_sklearn(
    model: Classifier,
    train_b: EmbeddingBatches,
    val_b: EmbeddingBatches,
    cfg: TrainConfig,
    probe: ProbeConfig,
    fold_dir: Path,
):
    from safetensors.torch import save_file

    from mitobench.evaluate.metrics import best_threshold
    from mitobench.train.loop import BEST, FitResult
    from mitobench.train.model import trainable_state
    from mitobench.train.sklearn_probe import fit_logistic

    started = time.perf_counter()
    weight, bias, c, auroc = fit_logistic(
        train_b.embeddings, train_b.labels, val_b.embeddings, val_b.labels, probe.c_grid, cfg.seed
    )
    with torch.no_grad():
        model.head.weight.copy_(weight)
        model.head.bias.copy_(bias)
    fold_dir.mkdir(parents=True, exist_ok=True)
    save_file(trainable_state(model), str(fold_dir / BEST))
    probs = torch.sigmoid(model(torch.from_numpy(val_b.embeddings))).detach().numpy()
    threshold = best_threshold(val_b.labels, probs) if cfg.threshold == "tune" else cfg.fixed_threshold
    return FitResult(0, auroc, threshold, 1, [{"C": c, "val_auroc": auroc}], time.perf_counter() - started)
