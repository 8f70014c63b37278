"""Executors: each is a plain map of `run_job` over the jobs, returning outcomes in job order."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mitobench.errors import ConfigError
from mitobench.progress import Progress

if TYPE_CHECKING:  # jobs train: imported when a grid runs, not when the CLI lists choices
    from mitobench.benchmark.jobs import Job, Outcome


class Executor(str, Enum):
    """Where jobs run: here, one after another, or fanned out over a Ray cluster."""

    inprocess = "inprocess"
    ray = "ray"


@dataclass
class JobContext:
    """What every job of a grid shares."""

    results_dir: Path
    data_root: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)


def map_inprocess(jobs: list[Job], ctx: JobContext, progress: Progress | None = None) -> list[Outcome]:
    from mitobench.benchmark.jobs import run_job

    return [run_job(job, ctx.results_dir, ctx.data_root, progress, ctx.overrides) for job in jobs]


def _run_job_on_worker(*args: Any) -> Outcome:
    """`run_job` in a Ray worker, which never passes through the command line's set-up."""
    from mitobench.allocator import configure_allocator
    from mitobench.benchmark.jobs import run_job

    configure_allocator()
    return run_job(*args)


def map_ray(jobs: list[Job], ctx: JobContext, address: str | None = None) -> list[Outcome]:
    """One Ray task per job with the grid's CPU/GPU needs; every worker writes the same store."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs Ray", "pip install 'mitobench[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        need = {"num_cpus": ctx.resources.get("num_cpus", 1), "num_gpus": ctx.resources.get("num_gpus", 0)}
        task = ray.remote(**need)(_run_job_on_worker)  # type: ignore[call-overload]
        root, data = ctx.results_dir.resolve(), ctx.data_root.resolve()
        return list(ray.get([task.remote(job, root, data, None, ctx.overrides) for job in jobs]))
    finally:
        if started_here:
            ray.shutdown()
