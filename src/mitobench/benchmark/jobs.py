"""A job is one fold of one run; running it trains (or resumes) that fold and records it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mitobench.benchmark.store import ResultsStore
from mitobench.errors import MitobenchError
from mitobench.progress import Progress
from mitobench.runs.rundir import DEFAULT_TRAIN_DATA, FoldDir, RunDir, data_slug, run_name
from mitobench.runs.spec import RunSpec
from mitobench.train.run import environment, settings_changes, train_run

Outcome = tuple[str, str | None]
"""(status, error): done, skipped (finished before), busy (another process holds it), failed or
interrupted."""

LOCKS = "locks"
"""Folder of a results directory holding one lock file per job being run."""


@dataclass(frozen=True)
class Job:
    """One fold of one (model, mode, preset) run."""

    spec: RunSpec
    fold: int
    run_dir: Path

    @property
    def key(self) -> str:
        s = self.spec
        key = f"{s.model}/{s.mode}/{s.preset}/fold_{self.fold}"
        return key if s.train_data == DEFAULT_TRAIN_DATA else f"{key}/on/{data_slug(s.train_data)}"


def run_dir_for(results_dir: Path, spec: RunSpec) -> Path:
    """Where a grid keeps the run of `spec`."""
    return results_dir / "runs" / run_name(spec.model, spec.mode, spec.preset, spec.train_data)


def run_job(
    job: Job,
    results_dir: Path,
    data_root: Path,
    progress: Progress | None = None,
    overrides: dict[str, Any] | None = None,
) -> Outcome:
    """Train/evaluate one job and record it; safe to call in any process."""
    store = ResultsStore(results_dir)
    run = RunDir(job.run_dir)
    fold = run.fold(job.fold)
    if store.status(job.key) == "done" and fold.is_done():
        changed = settings_changes(run, job.spec, job.spec.resolved()) if run.has_record() else []
        if not changed:
            return "skipped", None
        return "failed", (
            f"finished earlier with other settings ({'; '.join(changed[:4])}); its results are kept: "
            "write these settings' results to another --results folder, or delete "
            f"{job.run_dir} to retrain"
        )
    with claim(results_dir, job.key) as mine:
        if not mine:
            return "busy", "another process is running this job; rerun when it is done"
        return _run_claimed(job, store, fold, data_root, progress, overrides)


@contextlib.contextmanager
def claim(results_dir: Path, key: str) -> Iterator[bool]:
    """Hold the job's lock file (an OS lock: freed when the process ends, even by kill -9);
    yields False when another process holds it."""
    folder = results_dir / LOCKS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.lock"
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            fh.seek(0)
            fh.truncate()
            fh.write(f"{key}\npid {os.getpid()}\n")
            fh.flush()
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_claimed(
    job: Job,
    store: ResultsStore,
    fold: FoldDir,
    data_root: Path,
    progress: Progress | None,
    overrides: dict[str, Any] | None,
) -> Outcome:
    spec = job.spec.model_copy(update={"folds": [job.fold]})
    store.start(
        job.key,
        {
            "model": spec.model,
            "mode": spec.mode,
            "preset": spec.preset,
            "fold": job.fold,
            "spec": spec.model_dump(mode="json"),
            "environment": environment(),
        },
    )
    started = time.perf_counter()
    try:
        train_run(spec, job.run_dir, data_root, progress, **(overrides or {}))
    except MitobenchError as exc:
        store.fail(job.key, str(exc))
        return "failed", str(exc)
    except Exception as exc:  # a crash in one job must not stop the grid
        store.fail(job.key, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}")
        return "failed", f"{type(exc).__name__}: {exc}"
    if not fold.is_done():  # stopped before the end: resumable later
        store.fail(job.key, "interrupted")
        return "interrupted", "interrupted"
    store.finish(job.key, fold, time.perf_counter() - started)
    return "done", None
