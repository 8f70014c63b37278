"""The PyTorch fold models of a run: what the progress display calls each pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class _Recorder:
    """A Progress that keeps the description of every task started."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, description: str, total: int | None) -> None:
        self.started.append(description)

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


def test_progress_names_each_fold_of_an_ensemble_and_the_engine_of_one_model(
    trained_run: Path, real_patches
) -> None:
    from mitobench.inference.predictor import from_run

    images = np.stack(real_patches[1][:4])
    ensemble, single = _Recorder(), _Recorder()
    from_run(trained_run).fold_probs(images, progress=ensemble)
    from_run(trained_run, folds=[1]).fold_probs(images, progress=single)
    assert ensemble.started == ["fold 0", "fold 1"]
    assert single.started == ["PyTorch"]  # one model (e.g. the shipped one): no fold to name
