"""The Ray executor fans jobs out to a local two-worker cluster and matches the in-process results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mitobench.benchmark.runner import run_grid
from mitobench.benchmark.store import ResultsStore
from tests.conftest import tiny_grid

ray = pytest.importorskip("ray")


@pytest.fixture
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    c.add_node(num_cpus=1)
    c.wait_for_nodes()
    yield c
    ray.shutdown()
    c.shutdown()


def test_ray_matches_in_process(separable_root: Path, tmp_path: Path, cluster) -> None:
    grid = tiny_grid(runs=[{"model": "resnet10t", "modes": ["e2e"]}], resources={"num_cpus": 1})
    local = run_grid(grid, tmp_path / "local", separable_root, job_overrides={"pretrained": False})
    remote = run_grid(
        grid,
        tmp_path / "ray",
        separable_root,
        executor="ray",
        address=cluster.address,
        job_overrides={"pretrained": False},
    )
    assert sorted(remote.done) == sorted(local.done) and len(remote.done) == 2 and not remote.failed
    a = ResultsStore(tmp_path / "local").predictions().sort_values(["fold", "dataset", "sample"])
    b = ResultsStore(tmp_path / "ray").predictions().sort_values(["fold", "dataset", "sample"])
    assert list(a["sample"]) == list(b["sample"])
    np.testing.assert_allclose(a["prob"].to_numpy(), b["prob"].to_numpy(), atol=1e-3)
    hosts = ResultsStore(tmp_path / "ray").jobs()["environment"]
    assert len(hosts) == 2
