"""`mitobench evaluate`: score a run's fold models on more datasets and refresh its metrics."""

from __future__ import annotations

from pathlib import Path

from mitobench.data.cache import ImageCache
from mitobench.data.registry import load
from mitobench.inference.predictor import from_run
from mitobench.progress import Progress
from mitobench.runs.rundir import RunDir


def evaluate_run(
    run_dir: Path,
    dataset_keys: list[str],
    data_root: Path,
    tta: bool = False,
    progress: Progress | None = None,
) -> dict[str, object]:
    """Predict every finished fold on each dataset (labels required) and rewrite metrics.json."""
    datasets = [load(key, data_root) for key in dataset_keys]
    predictor = from_run(run_dir)
    run = RunDir(run_dir)
    for ds in datasets:
        if ds.source:
            run.claim_set(ds.key, ds.source, ds.fingerprint())
    cache = ImageCache()
    for ds in datasets:
        images = cache.load(ds, progress)
        probs = predictor.fold_probs(images, progress=progress)
        tta_probs = predictor.fold_probs(images, tta=True, progress=progress) if tta else {}
        for k, p in probs.items():
            run.fold(k).write_predictions(
                ds.key, ds.ids, ds.labels, p, tta_probs.get(k), ds.groups, ds.figure_facts()
            )
    return run.write_summary()
