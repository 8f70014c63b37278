"""`mitobench run`: every (model × mode × fold) job of a grid, each recorded in the store.

A finished job is never redone; an interrupted one resumes from its checkpoint; a failed one is
recorded with its error and the rest go on.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitobench.benchmark.grid import GridConfig
from mitobench.benchmark.store import ResultsStore
from mitobench.errors import MitobenchError
from mitobench.evaluate.results import write_summary
from mitobench.progress import Progress
from mitobench.train.run import RunSpec, environment, train_run


@dataclass(frozen=True)
class Job:
    """One fold of one (model, mode) run."""

    spec: RunSpec
    fold: int
    run_dir: Path

    @property
    def key(self) -> str:
        return f"{self.spec.model}/{self.spec.mode}/{self.spec.preset}/fold_{self.fold}"


@dataclass
class GridResult:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def run_dir_for(results_dir: Path, spec: RunSpec) -> Path:
    return results_dir / "runs" / f"{spec.model}-{spec.mode}-{spec.preset}"


def plan(grid: GridConfig, results_dir: Path) -> list[Job]:
    return [Job(spec, k, run_dir_for(results_dir, spec)) for spec in grid.run_specs() for k in spec.folds]


def run_job(
    job: Job,
    results_dir: Path,
    data_root: Path,
    progress: Progress | None = None,
    overrides: dict[str, Any] | None = None,
) -> tuple[str, str | None]:
    """Train/evaluate one job and record it; returns (status, error). Safe to call in any process."""
    store = ResultsStore(results_dir)
    if store.status(job.key) == "done" and (job.run_dir / f"fold_{job.fold}" / "done.json").is_file():
        return "skipped", None
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
    fold_dir = job.run_dir / f"fold_{job.fold}"
    if not (fold_dir / "done.json").is_file():  # stopped before the end: resumable later
        store.fail(job.key, "interrupted")
        return "interrupted", "interrupted"
    store.finish(job.key, fold_dir, time.perf_counter() - started)
    return "done", None


def run_grid(
    grid: GridConfig,
    results_dir: Path,
    data_root: Path,
    executor: str = "inprocess",
    address: str | None = None,
    progress: Progress | None = None,
    job_overrides: dict[str, Any] | None = None,
) -> GridResult:
    """Run every job of the grid with the chosen executor; summaries are refreshed at the end."""
    jobs = plan(grid, results_dir)
    if executor == "ray":
        from mitobench.benchmark.ray_executor import run_with_ray

        outcomes = run_with_ray(jobs, results_dir, data_root, grid.resources, address, job_overrides)
    else:
        outcomes = [run_job(job, results_dir, data_root, progress, job_overrides) for job in jobs]
    result = GridResult()
    for job, (status, error) in zip(jobs, outcomes, strict=True):
        if status == "done":
            result.done.append(job.key)
        elif status == "skipped":
            result.skipped.append(job.key)
        else:
            result.failed[job.key] = error or "unknown error"
    for run_dir in sorted({job.run_dir for job in jobs}):
        if run_dir.is_dir():
            write_summary(run_dir)
    return result
