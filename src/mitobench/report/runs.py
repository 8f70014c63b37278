"""A results store's predictions grouped per run and dataset: the one place fold models, their
thresholds and the fold ensemble are looked up for tables, plots and galleries."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mitobench.runs.rundir import DEFAULT_TRAIN_DATA

RUN_KEYS = ["model", "mode", "preset", "train_data"]
"""What tells two runs of a results store apart."""


def run_label(run: tuple[str, ...]) -> str:
    """`model · mode · preset`, with the training data when it is not the paper's."""
    model, mode, preset, train_data = run
    label = f"{model} · {mode} · {preset}"
    return label if train_data == DEFAULT_TRAIN_DATA else f"{label} · trained on {train_data}"


@dataclass
class RunSet:
    """One run's fold models on one dataset, samples aligned across folds."""

    run: tuple[str, ...]
    dataset: str
    labels: np.ndarray
    probs: np.ndarray
    """(fold, sample) probabilities of the atypical class."""
    folds: list[int]
    thresholds: np.ndarray
    samples: list[str]
    scores: list[dict[str, float]]
    """Each fold model's metrics on the set, as the results store holds them (scored once)."""

    @property
    def label(self) -> str:
        return run_label(self.run)

    @property
    def ensemble(self) -> np.ndarray:
        """The fold ensemble: the mean probability of the fold models."""
        return self.probs.mean(axis=0)

    @property
    def ensemble_threshold(self) -> float:
        """The ensemble's threshold: the mean of the folds' thresholds."""
        return float(self.thresholds.mean())


def run_sets(preds: pd.DataFrame, metrics: pd.DataFrame, dataset: str | None = None) -> Iterator[RunSet]:
    """Every (run, dataset) of the store, or every run on `dataset`; validation sets left out."""
    fold_metrics = metrics[metrics["variant"] == "fold"]
    scores = fold_metrics.set_index([*RUN_KEYS, "dataset", "fold", "metric"])["value"].unstack("metric")
    preds = preds[~preds["dataset"].str.endswith("/val")]
    if dataset is not None:
        preds = preds[preds["dataset"] == dataset]
    for key, part in preds.groupby([*RUN_KEYS, "dataset"], sort=True):
        run, name = tuple(key[:-1]), key[-1]
        wide = part.pivot_table(index="sample", columns="fold", values="prob").dropna()
        labels = part.drop_duplicates("sample").set_index("sample").loc[wide.index, "label"].to_numpy()
        folds = [int(c) for c in wide.columns]
        yield RunSet(
            run,
            name,
            labels,
            wide.to_numpy().T,
            folds,
            np.array([float(scores.loc[tuple([*run, name, f])]["threshold"]) for f in folds]),
            [str(s) for s in wide.index],
            [scores.loc[tuple([*run, name, f])].to_dict() for f in folds],
        )
