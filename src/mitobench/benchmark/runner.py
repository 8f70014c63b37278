"""`mitobench run`: every (model × mode × fold) job of a grid, each recorded in the store.

A finished job is never redone; an interrupted one resumes from its checkpoint; a failed one is
recorded with its error and the rest go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mitobench.benchmark.executors import Executor, JobContext, map_inprocess, map_ray
from mitobench.benchmark.grid import GridConfig
from mitobench.benchmark.jobs import Job, run_dir_for
from mitobench.progress import Progress
from mitobench.runs.rundir import RunDir


@dataclass
class GridResult:
    done: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    """Jobs another process was running: left to it."""
    failed: dict[str, str] = field(default_factory=dict)


def plan(grid: GridConfig, results_dir: Path) -> list[Job]:
    """Every job of the grid, in the config's order."""
    return [Job(spec, k, run_dir_for(results_dir, spec)) for spec in grid.run_specs() for k in spec.folds]


def run_grid(
    grid: GridConfig,
    results_dir: Path,
    data_root: Path,
    executor: Executor | str = Executor.inprocess,
    address: str | None = None,
    progress: Progress | None = None,
    job_overrides: dict[str, Any] | None = None,
) -> GridResult:
    """Run every job of the grid with the chosen executor; summaries are refreshed at the end."""
    jobs = plan(grid, results_dir)
    ctx = JobContext(results_dir, data_root, job_overrides or {}, grid.resources)
    if Executor(executor) is Executor.ray:
        outcomes = map_ray(jobs, ctx, address)
    else:
        outcomes = map_inprocess(jobs, ctx, progress)
    result = GridResult()
    for job, (status, error) in zip(jobs, outcomes, strict=True):
        if status == "done":
            result.done.append(job.key)
        elif status == "skipped":
            result.skipped.append(job.key)
        elif status == "busy":
            result.busy.append(job.key)
        else:
            result.failed[job.key] = error or "unknown error"
    for run_dir in sorted({job.run_dir for job in jobs}):
        if run_dir.is_dir():
            RunDir(run_dir).write_summary()
    return result
