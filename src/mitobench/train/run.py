"""Training a run: a model in one mode, fold by fold on its training data, each fold model
evaluated on the evaluation sets. Finished folds are kept; an interrupted one resumes."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mitobench import ATYPICAL, CLASS_NAMES, NORMAL, machine
from mitobench.data.cache import ImageCache
from mitobench.data.dataset import Dataset, vote_columns
from mitobench.data.registry import load, load_present, patch_geometry
from mitobench.data.splits import fold_split, split_record, training_folds
from mitobench.errors import ConfigError, DataError
from mitobench.models.builder import build
from mitobench.models.encoder import Encoder
from mitobench.progress import NullProgress, Progress
from mitobench.recipes.config import TrainConfig
from mitobench.runs.rundir import FoldDir, RunDir
from mitobench.runs.spec import RunSpec
from mitobench.train.batches import EmbeddingBatches, ImageBatches
from mitobench.train.embeddings import EmbeddingCache
from mitobench.train.loop import FitContext, predict_probs, seed_everything
from mitobench.train.model import init_head
from mitobench.train.modes import TrainingMode, get_mode
from mitobench.train.precision import device, resolve
from mitobench.train.precision_race import needs_race


@dataclass
class RunResult:
    run_dir: Path
    summary: dict[str, Any]
    trained_folds: list[int] = field(default_factory=list)
    skipped_sets: list[str] = field(default_factory=list)
    embedding_cache: dict[str, int] = field(default_factory=dict)


def environment(cfg: TrainConfig | None = None) -> dict[str, Any]:
    """The machine's facts (processor, bf16, threads, GPUs, versions) and, given a recipe, what
    its precision settings become here and why."""
    dev = device()
    env: dict[str, Any] = {**machine.describe(), "device": str(dev), "machine": machine.label()}
    if cfg is not None:
        train = resolve(cfg.precision, dev, training=True, size=cfg.side).record()
        if needs_race(cfg, dev):  # decided by the first fit's race, not known yet
            train["used"] = "raced: bf16 or fp32"
            raced = "bf16 races fp32 on the first fold here (fit.json: the one used)"
            train["reason"] = f"{train['reason']}; {raced}"
        env["precision"] = {"train": train, "inference": resolve(cfg.eval_precision, dev).record()}
    return env


_NOT_IDENTITY = ("folds", "train", "allow_overlap")
"""Which folds to train now is not part of a run's identity (the jobs of a grid add folds to one
run), and the overrides are compared resolved, as the training settings they make."""


def _identity(spec: dict[str, Any], cfg: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {k: v for k, v in spec.items() if k not in _NOT_IDENTITY}, "train_config": cfg}


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        out.update(_flat(value, f"{name}.") if isinstance(value, dict) else {name: value})
    return out


def settings_changes(run: RunDir, spec: RunSpec, cfg: TrainConfig) -> list[str]:
    """`setting: old -> new` for every resolved setting that differs from the run on disk."""
    old = run.read_record()
    before = _flat(_identity(old.get("spec", {}), old.get("train_config", {})))
    after = _flat(_identity(spec.model_dump(mode="json"), cfg.model_dump(mode="json")))
    keys = sorted(set(before) | set(after))
    return [
        f"{k.split('.', 1)[1]}: {before.get(k, '(unset)')} -> {after.get(k, '(unset)')}"
        for k in keys
        if before.get(k) != after.get(k) and not (k not in before and _added_default(k, after[k]))
    ]


def _added_default(key: str, value: Any) -> bool:
    """Whether `key` is a setting newer than the run on disk, at the default that keeps the old
    behaviour (e.g. `all_figures: false`): a run made before it resumes."""
    section, _, name = key.partition(".")
    fields = {"spec": RunSpec.model_fields, "train_config": TrainConfig.model_fields}.get(section, {})
    field = fields.get(name)
    if field is None or field.is_required():
        return False
    default = field.get_default(call_default_factory=True)
    return bool(default == value)


def _check_run_dir(run: RunDir, spec: RunSpec, cfg: TrainConfig, folds: dict[str, str]) -> None:
    """Write run.json, or check that the run already there is this one, on the same folds."""
    if run.has_record():
        old = run.read_record()
        changed = settings_changes(run, spec, cfg)
        if changed:
            shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
            raise ConfigError(
                f"{run.path} holds a run with other settings ({shown})",
                "choose another output directory, or delete that one to start over",
            )
        if old.get("folds", {}).get("sha256") != folds["sha256"]:
            made = old.get("folds", {}).get("sklearn", "an unrecorded scikit-learn")
            raise ConfigError(
                f"{run.path} was trained on other folds (made with scikit-learn {made}; "
                f"these are the {folds['split']!r} folds under {folds['sklearn']})",
                "resume it where it was made, or train into a new directory",
            )
        return
    record = {"spec": spec.model_dump(mode="json"), "train_config": cfg.model_dump(mode="json")}
    run.write_record({**record, "folds": folds, "environment": environment(cfg), "created": time.time()})


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


@dataclass
class _Data:
    """Every set a run touches, decoded once: images (and, for a probe, embeddings) by name."""

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    keys: dict[str, str]
    vote_share: dict[str, np.ndarray]
    """Share of experts who called each figure atypical, for sets with complete votes."""
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)
    teacher: dict[str, np.ndarray] = field(default_factory=dict)
    """A teacher run's out-of-fold P(atypical) per training figure (distillation)."""

    def batches(
        self,
        name: str,
        idx: np.ndarray | None,
        encoder: Encoder | None,
        cfg: TrainConfig,
        dev: torch.device,
        train: bool = False,
    ) -> ImageBatches | EmbeddingBatches:
        def pick(a: np.ndarray) -> np.ndarray:
            return a if idx is None else a[idx]

        labels = pick(self.labels[name])
        targets = None
        if train and cfg.soft_labels:
            if name not in self.vote_share:
                raise ConfigError(
                    f"soft_labels needs expert votes, and {name} has none (vote_* columns)",
                    "train on data with votes (AMi-Br has three experts'), or set soft_labels: false",
                )
            targets = pick(self.vote_share[name]).astype(np.float32)
        if train and name in self.teacher:
            usual = targets if targets is not None else labels.astype(np.float32)
            w = cfg.teacher_weight
            targets = (w * pick(self.teacher[name]) + (1 - w) * usual).astype(np.float32)
        if encoder is None:
            return EmbeddingBatches(pick(self.embeddings[name]), labels, dev, targets)
        cnn = encoder.spec.convolutional and cfg.channels_last
        augment = cfg.augment if train else []
        return ImageBatches(pick(self.images[name]), labels, encoder, augment, cnn, dev, targets)


def _teacher(cfg: TrainConfig, train_set: Dataset) -> np.ndarray | None:
    """The teacher run's held-out P(atypical) per training figure, in the training set's order."""
    if cfg.teacher is None:
        return None
    teacher = RunDir(Path(cfg.teacher).expanduser())
    if not teacher.has_record():
        raise ConfigError(
            f"teacher {cfg.teacher}: not a mitobench run (no run.json)",
            "pass a run folder made by `mitobench train` or `mitobench run` (results/NAME/runs/RUN)",
        )
    return teacher.out_of_fold(train_set.name, [str(i) for i in train_set.ids])


def _load(sets: list[Dataset], cache: ImageCache, progress: Progress) -> _Data:
    images, labels, keys, shares = {}, {}, {}, {}
    for ds in sets:
        images[ds.key], keys[ds.key] = cache.load_keyed(ds, progress)
        labels[ds.key] = ds.labels
        votes = ds.frame[vote_columns(ds.frame)]
        if votes.shape[1] >= 2 and votes.notna().all().all():
            shares[ds.key] = votes.to_numpy(dtype=np.float64).mean(axis=1)
    return _Data(images, labels, keys, shares)


def _overlap(train_set: Dataset, evals: list[Dataset]) -> dict[str, int]:
    """Per evaluation set, how many of its images are training images too (by content), checked
    where a user's own data is involved (the released splits are disjoint)."""
    if not train_set.source and not any(ds.source for ds in evals):
        return {}
    seen = set(train_set.content_hashes)  # read once per dataset (a user's set: at its load)
    counts = {ds.key: sum(h in seen for h in ds.content_hashes) for ds in evals}
    return {k: n for k, n in counts.items() if n}


def _check_fold_classes(name: str, folds: np.ndarray, labels: np.ndarray, wanted: list[int]) -> None:
    """Before any training: each wanted fold's validation and training sets hold both classes
    (a validation set of one class has no balanced accuracy to select an epoch by)."""
    for k in wanted:
        for part, mask in (("validation", folds == k), ("training", folds != k)):
            present = set(labels[mask].tolist())
            if present != {0, 1}:
                lacking = CLASS_NAMES[ATYPICAL if ATYPICAL not in present else NORMAL].lower()
                raise DataError(
                    f"{name}: fold {k}'s {part} set holds no {lacking} figure",
                    "give every fold figures of both classes (fix the fold column, or drop it)",
                )


@dataclass
class _Prepared:
    """A run's data and folds, checked before any work."""

    train_set: Dataset
    evals: list[Dataset]
    missing: list[str]
    folds: np.ndarray
    fold_record: dict[str, Any]


def _prepare(spec: RunSpec, run: RunDir, cfg: TrainConfig, data_root: Path) -> _Prepared:
    """Load the training and evaluation sets and check folds, classes, overlap and the run
    folder — every refusal comes before an image is decoded."""
    train_set = load(spec.train_data, data_root)
    folds, how = training_folds(train_set, split=spec.split)
    absent = [k for k in spec.folds if k not in set(folds.tolist())]
    if absent:
        raise ConfigError(
            f"{spec.train_data} has no fold {absent[0]} (its folds: {sorted(set(folds.tolist()))})",
            "choose folds that exist (--folds)",
        )
    if spec.all_figures:  # one model on every figure: no validation part to check
        if set(train_set.labels.tolist()) != {0, 1}:
            raise DataError(
                f"{spec.train_data} holds figures of one class only", "train on atypical and normal figures"
            )
    else:
        _check_fold_classes(spec.train_data, folds, train_set.labels, spec.folds)
    fold_record = split_record(train_set, folds, how)
    evals, missing = load_present(spec.eval_sets, data_root)
    overlap = _overlap(train_set, evals)
    if overlap and not spec.allow_overlap:
        key, n = next(iter(overlap.items()))
        raise DataError(
            f"{key} shares {n} image(s) with the training data {spec.train_data} (by content): "
            "its figures would be scored by models that trained on them",
            "evaluate on images the models never saw, or pass --allow-overlap (recorded in run.json)",
        )
    _check_run_dir(run, spec, cfg, fold_record)
    if overlap:
        run.write_record({**run.read_record(), "eval_overlap": overlap})
    for ds in (train_set, *evals):
        if ds.source:  # a user's folder or CSV: its name must keep meaning that data
            run.claim_set(ds.key, ds.source, ds.fingerprint())
    return _Prepared(train_set, evals, missing, folds, fold_record)


def _embed(
    data: _Data,
    sets: list[Dataset],
    encoder: Encoder,
    cfg: TrainConfig,
    dev: torch.device,
    progress: Progress,
) -> dict[str, int]:
    """Every set's embeddings from the frozen encoder, through the disk cache; (hits, misses)."""
    ecache = EmbeddingCache()
    for ds in sets:
        images, key = data.images[ds.key], data.keys[ds.key]
        data.embeddings[ds.key] = ecache.get(
            encoder, ds, images, key, cfg.eval_precision, dev, cfg.eval_batch_size, progress
        )
    return {"hits": ecache.hits, "misses": ecache.misses}


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
    run = RunDir(run_dir)
    cfg = spec.resolved()
    mode = get_mode(spec.mode)
    prep = _prepare(spec, run, cfg, data_root)
    if all(run.fold(k).is_done() for k in spec.folds):
        return RunResult(run_dir, run.write_summary())  # nothing to train or evaluate
    dev = device()
    teacher = _teacher(cfg, prep.train_set)  # checked before the images are read
    data = _load([prep.train_set, *prep.evals], ImageCache(), progress)
    run_record = run.read_record()
    if teacher is not None and cfg.teacher is not None:
        data.teacher[prep.train_set.key] = teacher
        digest = hashlib.sha256(np.round(teacher, 6).tobytes()).hexdigest()
        if run_record.get("teacher", {}).get("sha256") not in (None, digest):
            raise ConfigError(
                f"{run_dir}: its folds were distilled from other teacher predictions "
                f"than {cfg.teacher} holds now",
                "distil into a new --out folder (or restore the teacher run)",
            )
        run_record = {**run_record, "teacher": {"run": str(Path(cfg.teacher).resolve()), "sha256": digest}}
        run.write_record(run_record)
    if "patch" not in run_record:  # what `predict`, `slide` and the bundle cut patches to
        side = data.images[prep.train_set.key].shape[1:3]
        patch = patch_geometry(spec.train_data, (int(side[0]), int(side[1])))
        run.write_record({**run_record, "patch": patch.to_dict()})
    result = RunResult(run_dir, {}, skipped_sets=prep.missing)
    encoder = None
    if mode.on_embeddings:
        encoder = _build_encoder(spec, cfg, cfg.seed, pretrained, model_overrides).to(dev)
        result.embedding_cache = _embed(data, [prep.train_set, *prep.evals], encoder, cfg, dev, progress)
    for k in spec.folds:
        fold = run.fold(k)
        if fold.is_done():
            continue
        fold_cfg = cfg.model_copy(update={"seed": cfg.seed + k})
        fold_encoder = None
        if encoder is not None:
            model = mode.classifier(encoder, spec.options)
        else:
            fold_encoder = _build_encoder(spec, fold_cfg, fold_cfg.seed, pretrained, model_overrides)
            model = mode.classifier(fold_encoder, spec.options)
        init_head(model.head, fold_cfg.head_init)
        job = _FoldJob(mode, fold, fold_cfg, spec, dev, progress)
        record = job.run(model, fold_encoder, prep.folds, prep.train_set, prep.evals, data, stop_after_epochs)
        if record is None:
            return result  # stopped early on request (tests): resumable
        fold.write_done({**record, "folds_sha256": prep.fold_record["sha256"]})
        fold.scores()  # scored once, here; the summary, the store and the report read these
        run.record_finished_folds()
        result.trained_folds.append(k)
    result.summary = run.write_summary()
    return result


@dataclass
class _FoldJob:
    """Fit one fold, then file its predictions on the validation fold and every evaluation set."""

    mode: TrainingMode
    fold: FoldDir
    cfg: TrainConfig
    spec: RunSpec
    dev: torch.device
    progress: Progress

    def run(
        self,
        model: torch.nn.Module,
        encoder: Encoder | None,
        folds: np.ndarray,
        train_set: Dataset,
        evals: list[Dataset],
        data: _Data,
        stop_after_epochs: int | None,
    ) -> dict[str, Any] | None:
        """The fold's done record, or None when training stopped early on request."""
        started = time.perf_counter()
        cfg, dev = self.cfg, self.dev
        tr_idx, va_idx = fold_split(folds, self.fold.fold)
        if self.spec.all_figures:
            tr_idx, va_idx = np.arange(len(folds)), np.arange(0)
        model.to(dev)
        if encoder is not None and encoder.spec.convolutional and cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        train_b = data.batches(train_set.key, tr_idx, encoder, cfg, dev, train=True)
        val_b = data.batches(train_set.key, va_idx, encoder, cfg, dev)
        ctx = FitContext(
            train_b, val_b, cfg, self.fold, dev, self.spec.options, self.progress, stop_after_epochs
        )
        fitted = self.mode.fit(model, ctx)  # type: ignore[arg-type]  # the mode's classifier
        if not self.fold.is_fitted():
            return None
        if len(va_idx):
            val_ids = [train_set.ids[i] for i in va_idx]
            val_probs = self._predict(model, val_b, "validating")
            val_groups = train_set.groups[va_idx]
            self.fold.write_predictions(
                f"{train_set.name}/val", val_ids, val_b.labels, val_probs, None, val_groups
            )  # validation rows carry no votes: the rater analysis reads test sets only
        for ds in evals:
            batches = data.batches(ds.key, None, encoder, cfg, dev)
            probs = self._predict(model, batches, f"evaluating {ds.key}", testing=True)
            tta = (
                self._predict(model, batches, f"TTA {ds.key}", tta=True, testing=True)
                if cfg.tta and encoder
                else None
            )
            self.fold.write_predictions(ds.key, ds.ids, ds.labels, probs, tta, ds.groups, ds.figure_facts())
        return {
            "fold": self.fold.fold,
            "threshold": fitted.threshold,
            "best_epoch": fitted.best_epoch,
            "best_val_score": fitted.best_score,
            "epochs_run": fitted.epochs_run,
            "train_figures": len(tr_idx),
            "val_figures": len(va_idx),
            "fit_seconds": fitted.seconds,
            "total_seconds": time.perf_counter() - started,
        }

    def _predict(
        self, model: torch.nn.Module, batches, description: str, tta: bool = False, testing: bool = False
    ) -> np.ndarray:
        cfg = self.cfg.for_testing() if testing else self.cfg
        return predict_probs(
            model, batches, cfg, self.dev, tta=tta, progress=self.progress, description=description
        )
