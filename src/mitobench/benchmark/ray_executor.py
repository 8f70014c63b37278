"""Fan jobs out over a Ray cluster; every worker writes to the same results store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mitobench.errors import ConfigError


def run_with_ray(
    jobs: list,
    results_dir: Path,
    data_root: Path,
    resources: dict[str, float],
    address: str | None,
    overrides: dict[str, Any] | None = None,
) -> list[tuple[str, str | None]]:
    """Submit one Ray task per job with its CPU/GPU needs; returns outcomes in job order."""
    try:
        import ray
    except ImportError:
        raise ConfigError("the Ray executor needs Ray", "pip install 'mitobench[ray]'") from None
    from mitobench.benchmark.runner import run_job

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=resources.get("num_cpus", 1), num_gpus=resources.get("num_gpus", 0))(
            run_job
        )
        refs = [task.remote(job, results_dir.resolve(), data_root.resolve(), None, overrides) for job in jobs]
        return list(ray.get(refs))
    finally:
        if started_here:
            ray.shutdown()
