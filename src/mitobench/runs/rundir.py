"""The layout of a run directory: every path, read and write of a run goes through this module.

A *run* is one model trained in one mode under one recipe, fold by fold::

    <run>/
      run.json                    settings, folds fingerprint, environment (RunDir.record)
      metrics.json                the summary over finished folds (RunDir.write_summary)
      datasets.json               which folder / CSV each of your evaluation sets' names means
      fold_<k>/
        best.safetensors          the best epoch's trainable tensors
        last.pt                   resumable training state (gone once the fit ends)
        fit.json                  the fit's result: best epoch, threshold, history
        done.json                 the fold is trained and evaluated
        predictions/<name>__<split>.csv   id, label, prob[, prob_tta][, group][, vote_*, subtype_1]
        scores.json               each set's metrics, computed once from those files (FoldDir.scores)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mitobench.errors import ConfigError, StorageError
from mitobench.metrics.binary import REGISTRY, compute, ensemble_scores, summarise
from mitobench.paths import atomic_path, atomic_write_text

RUN_FILE = "run.json"

DEFAULT_TRAIN_DATA = "amibr/train"
"""The paper's training data."""


def run_name(model: str, mode: str, preset: str, train_data: str = DEFAULT_TRAIN_DATA) -> str:
    """The directory name of a run: `<model>-<mode>-<preset>`, and `-on-<data>-<hash>` when it
    trained on other data than AMi-Br's training split (the hash keeps `a/test`, `b/test` apart)."""
    name = f"{model}-{mode}-{preset}"
    return name if train_data == DEFAULT_TRAIN_DATA else f"{name}-on-{data_slug(train_data)}"


def data_slug(train_data: str) -> str:
    """A short, file-name-safe, unique name for a training set given by name or path."""
    stem = Path(train_data).stem or "data"
    digest = hashlib.sha256(str(Path(train_data).expanduser().resolve()).encode()).hexdigest()[:8]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem) + f"-{digest}"


def set_file(key: str) -> str:
    """`amibr/test` -> `amibr__test.csv` (one file per evaluated dataset)."""
    return key.replace("/", "__").replace("\\", "__") + ".csv"


def set_key(file: Path) -> str:
    """The inverse of `set_file`."""
    return file.stem.replace("__", "/")


def _read_json(path: Path) -> dict[str, Any]:
    """A run file, or one message naming it when it is damaged (every write is atomic, so only a
    hand edit or a broken disk makes one)."""
    try:
        value = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"{path} is damaged ({exc})",
            f"delete {path.parent.name}/ and rerun the same command to redo that part of the run",
        ) from None
    if not isinstance(value, dict):
        raise ConfigError(f"{path} is damaged (not a JSON object)", f"delete {path.parent.name}/ and rerun")
    return value


FOLD_DIR = re.compile(r"fold_(\d+)")
"""A fold's folder; anything else beside them (`fold_0_old/`, a backup) is not a fold."""


def _write_json(path: Path, value: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(value, indent=1))


@dataclass(frozen=True)
class FoldDir:
    """One fold of a run."""

    path: Path
    fold: int

    @property
    def best(self) -> Path:
        return self.path / "best.safetensors"

    @property
    def last(self) -> Path:
        return self.path / "last.pt"

    @property
    def fit_file(self) -> Path:
        return self.path / "fit.json"

    @property
    def done_file(self) -> Path:
        return self.path / "done.json"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions"

    @property
    def scores_file(self) -> Path:
        return self.path / "scores.json"

    def is_fitted(self) -> bool:
        return self.fit_file.is_file()

    def is_done(self) -> bool:
        return self.done_file.is_file()

    def read_fit(self) -> dict[str, Any]:
        return _read_json(self.fit_file)

    def write_fit(self, record: dict[str, Any]) -> None:
        _write_json(self.fit_file, record)

    def read_done(self) -> dict[str, Any]:
        return _read_json(self.done_file)

    def write_done(self, record: dict[str, Any]) -> None:
        _write_json(self.done_file, record)

    def prediction_file(self, key: str) -> Path:
        return self.predictions / set_file(key)

    def prediction_files(self) -> list[Path]:
        return sorted(self.predictions.glob("*.csv"))

    def write_predictions(
        self,
        key: str,
        ids: list[str],
        labels: np.ndarray,
        probs: np.ndarray,
        tta: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        facts: pd.DataFrame | None = None,
    ) -> None:
        """One evaluated set's probabilities; `groups` (each figure's slide, where every one is
        known) and `facts` (the experts' votes and subtypes, `Dataset.figure_facts`) travel with
        them, so the report resamples slides and weighs expert agreement without the data."""
        frame = pd.DataFrame({"id": ids, "label": labels.astype(int), "prob": probs})
        if tta is not None:
            frame["prob_tta"] = tta
        if groups is not None and pd.notna(groups).all():
            frame["group"] = [str(g) for g in groups]
        if facts is not None and len(facts.columns):
            frame = pd.concat([frame, facts.reset_index(drop=True)], axis=1)
        with atomic_path(self.prediction_file(key)) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.6f")

    def scores(self) -> dict[str, dict[str, dict[str, float]]]:
        """Every evaluated set's metrics at the fold's threshold, per variant (`fold`, `tta`).

        The one place a fold's predictions are scored: computed on first use after the fold is
        done and kept in scores.json beside the checksum of each file they came from, so the run
        summary, the results store and the report read the same numbers (a file rewritten by
        `mitobench evaluate` is scored again)."""
        threshold = float(self.read_done()["threshold"])
        kept = _read_json(self.scores_file) if self.scores_file.is_file() else {}
        out: dict[str, dict[str, dict[str, float]]] = {}
        fresh: dict[str, Any] = {}
        changed = False
        for csv in self.prediction_files():
            key, digest = set_key(csv), hashlib.sha256(csv.read_bytes()).hexdigest()
            entry = kept.get(key, {})
            if not _current(entry, digest, threshold):
                entry = {"sha256": digest, "threshold": threshold, "variants": score_file(csv, threshold)}
                changed = True
            fresh[key] = entry
            out[key] = entry["variants"]
        if changed or set(fresh) != set(kept):
            # a read-only run (a shared results folder): scored, not kept
            with contextlib.suppress(OSError, StorageError):
                _write_json(self.scores_file, fresh)
        return out


def _current(entry: dict[str, Any], digest: str, threshold: float) -> bool:
    """Kept scores still stand: same file, same threshold, every registered metric present."""
    same = (entry.get("sha256"), entry.get("threshold")) == (digest, threshold)
    return same and set(REGISTRY) <= set(entry["variants"]["fold"])


def score_file(csv: Path, threshold: float) -> dict[str, dict[str, float]]:
    """One prediction file's metrics: the fold model's, and with test-time augmentation if kept."""
    frame = pd.read_csv(csv, usecols=lambda c: c in ("label", "prob", "prob_tta"))
    labels = frame["label"].to_numpy()
    out = {"fold": compute(labels, frame["prob"].to_numpy(), threshold)}
    if "prob_tta" in frame:
        out["tta"] = compute(labels, frame["prob_tta"].to_numpy(), threshold)
    return out


@dataclass(frozen=True)
class RunDir:
    """A run directory (see the module docstring for its layout)."""

    path: Path

    @property
    def record_file(self) -> Path:
        return self.path / RUN_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def sets_file(self) -> Path:
        return self.path / "datasets.json"

    def claim_set(self, key: str, source: str, fingerprint: str) -> None:
        """Record that `key` names the data at `source`; refuse a different dataset under a taken
        key, whose predictions it would otherwise silently replace."""
        sets = _read_json(self.sets_file) if self.sets_file.is_file() else {}
        entry = {"source": source, "sha256": fingerprint}
        old = sets.get(key)
        if old is not None and old != entry:
            raise ConfigError(
                f"{self.path} already holds a dataset named {key!r} (from {old['source']}); "
                f"{source} is a different one",
                "give it another name: --dataset NAME=PATH (or --eval NAME=PATH)",
            )
        if old is None:
            _write_json(self.sets_file, {**sets, key: entry})

    def fold(self, k: int) -> FoldDir:
        return FoldDir(self.path / f"fold_{k}", k)

    def has_record(self) -> bool:
        return self.record_file.is_file()

    def read_record(self) -> dict[str, Any]:
        return _read_json(self.record_file)

    def write_record(self, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        _write_json(self.record_file, record)

    def record_finished_folds(self) -> None:
        """Keep run.json's `spec.folds` equal to the folds on disk that are done (a grid trains
        a run one fold per job, so the first job's list would otherwise stand for the run)."""
        record = self.read_record()
        record.setdefault("spec", {})["folds"] = self.finished_folds()
        _write_json(self.record_file, record)

    def fold_numbers(self) -> list[int]:
        """The folds with a folder (finished or not), in order; other `fold_*` names are ignored."""
        found = (FOLD_DIR.fullmatch(p.name) for p in self.path.glob("fold_*") if p.is_dir())
        return sorted(int(m.group(1)) for m in found if m)

    def finished_folds(self) -> list[int]:
        """The folds trained and evaluated, in order."""
        return [k for k in self.fold_numbers() if self.fold(k).is_done()]

    def unfinished_folds(self) -> list[int]:
        """Folds begun but not finished (interrupted, or training in another process)."""
        return [k for k in self.fold_numbers() if not self.fold(k).is_done()]

    def summarise(self) -> dict[str, object]:
        """Per fold, mean ± std over folds, the fold ensemble and TTA, for every evaluated set."""
        done = {k: self.fold(k).read_done() for k in self.finished_folds()}
        scores = {k: self.fold(k).scores() for k in done}
        sets: dict[str, dict[str, object]] = {}
        for key in sorted({key for s in scores.values() for key in s}):
            per = {k: s[key] for k, s in scores.items() if key in s}
            frames = {
                k: pd.read_csv(self.fold(k).prediction_file(key), usecols=["id", "label", "prob"])
                for k in per
            }
            sets[key] = _set_summary(per, frames, {k: float(done[k]["threshold"]) for k in per})
        return {"folds": {str(k): d for k, d in done.items()}, "sets": sets}

    def out_of_fold(self, train_set: str, ids: list[str]) -> np.ndarray:
        """P(atypical) of each of `ids` (the training figures of `train_set`, e.g. `amibr`) from the
        fold model that held it out: the run's validation predictions, every fold finished."""
        folds, unfinished = self.fold_numbers(), self.unfinished_folds()
        if not folds or unfinished:
            raise ConfigError(
                f"{self.path}: the teacher run has "
                + ("no fold" if not folds else f"unfinished folds {unfinished}"),
                "finish the teacher first (rerun its train/run command), then distil from it",
            )
        frames = [
            pd.read_csv(f, dtype={"id": str}, usecols=["id", "prob"])
            for k in folds
            if (f := self.fold(k).prediction_file(f"{train_set}/val")).is_file()
        ]
        held_out = pd.concat(frames).set_index("id")["prob"] if frames else pd.Series(dtype=float)
        if not held_out.index.is_unique:
            raise ConfigError(
                f"{self.path}: a figure is held out by two of the teacher's folds",
                "distil from a run of one split",
            )
        missing = [i for i in ids if i not in held_out.index]
        if missing:
            raise ConfigError(
                f"{self.path}: teacher run holds no held-out prediction for {len(missing)} of the "
                f"{len(ids)} training figures of {train_set} (first: {missing[0]})",
                "distil from a run trained on the same training data with every fold finished",
            )
        probs: np.ndarray = held_out.loc[ids].to_numpy(dtype=np.float64)
        return probs

    def test_figures(self) -> dict[str, dict[str, Any]]:
        """Per test set: figures, folds, the fold models' mean and the fold ensemble's balanced
        accuracy, AUROC and ECE — what an exported model carries and `models info` prints."""
        out: dict[str, dict[str, Any]] = {}
        for key, entry in self.summarise()["sets"].items():  # type: ignore[attr-defined]
            if key.endswith("/val"):
                continue
            names = ("balanced_accuracy", "auroc", "ece")
            out[key] = {
                "n": entry["n"],
                "folds": len(entry["per_fold"]),
                "fold_mean": {m: entry["summary"][m]["mean"] for m in names},
                "ensemble": {m: entry["ensemble"][m] for m in names} if "ensemble" in entry else None,
            }
        return out

    def write_summary(self) -> dict[str, object]:
        summary = self.summarise()
        _write_json(self.metrics_file, summary)
        return summary


def _set_summary(
    scores: dict[int, dict[str, dict[str, float]]],
    frames: dict[int, pd.DataFrame],
    thresholds: dict[int, float],
) -> dict[str, object]:
    """One set's summary from its folds' stored scores; only the ensemble is scored here."""
    per_fold = {k: s["fold"] for k, s in scores.items()}
    first = next(iter(frames.values()))
    entry: dict[str, object] = {
        "n": len(first),
        "per_fold": {str(k): m for k, m in per_fold.items()},
        "summary": summarise(list(per_fold.values())),
    }
    if len(frames) > 1 and all(f["id"].equals(first["id"]) for f in frames.values()):
        probs = np.stack([f["prob"].to_numpy() for f in frames.values()])
        entry["ensemble"] = ensemble_scores(
            first["label"].to_numpy(), probs, np.array(list(thresholds.values()))
        )
    if all("tta" in s for s in scores.values()):
        tta = {k: s["tta"] for k, s in scores.items()}
        entry["tta"] = {
            "per_fold": {str(k): m for k, m in tta.items()},
            "summary": summarise(list(tta.values())),
        }
    return entry


def find_run(path: Path) -> Path:
    """`path` if it is a run; a results folder (`mitobench run`) holding one run gives that run,
    holding several is an error naming each (`results/NAME/runs/RUN`)."""
    if (path / RUN_FILE).is_file() or not (path / "runs").is_dir():
        return path
    runs = sorted(p for p in (path / "runs").iterdir() if (p / RUN_FILE).is_file())
    if len(runs) == 1:
        return runs[0]
    if not runs:
        raise ConfigError(f"{path} is a results folder with no run in {path / 'runs'}", "run the grid first")
    raise ConfigError(
        f"{path} is a results folder with {len(runs)} runs",
        "pass one of them: " + ", ".join(str(r) for r in runs),
    )
