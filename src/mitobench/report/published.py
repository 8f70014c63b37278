"""The paper's published figures, shipped with the package (see reference/SOURCE.md).

They are shown only beside runs of the `paper` preset, with the paper's spread convention
(`np.std`, population, ddof 0).
"""

from __future__ import annotations

from importlib import resources
from io import StringIO

import pandas as pd

from mitobench.models.registry import all_specs
from mitobench.runs.rundir import DEFAULT_TRAIN_DATA

MODES = {"end-to-end": "e2e", "linear-probe": "probe", "lora": "lora"}
DATASETS = {"AMi-Br": "amibr/test", "AtNorM-Br": "atnorm-br/test", "AtNorM-MD": "atnorm-md/test"}
PAPER_PRESET = "paper"
PAPER_TRAIN = DEFAULT_TRAIN_DATA


def _read(name: str) -> pd.DataFrame:
    text = resources.files("mitobench.reference").joinpath(name).read_text()
    frame = pd.read_csv(StringIO(text))
    by_title = {s.title: s.name for s in all_specs()}
    frame["model"] = frame["model"].map(by_title)
    frame["mode"] = frame["mode"].map(MODES)
    frame["dataset"] = frame["dataset"].map(DATASETS)
    return frame


def published() -> pd.DataFrame:
    """Columns: model (our registry name), mode, dataset (our key), paper_bacc_mean/std, paper_auroc_mean."""
    frame = _read("published_results.csv")
    return pd.DataFrame(
        {
            "model": frame["model"],
            "mode": frame["mode"],
            "dataset": frame["dataset"],
            "paper_bacc_mean": frame["balanced_accuracy_mean"],
            "paper_bacc_std": frame["balanced_accuracy_std"],
            "paper_auroc_mean": frame["auroc_mean"],
        }
    )


def published_per_fold() -> pd.DataFrame:
    """Columns: model, mode, dataset, fold (0-based, the k-th split), paper_bacc, paper_auroc."""
    frame = _read("published_per_fold.csv")
    return frame.rename(columns={"balanced_accuracy": "paper_bacc", "auroc": "paper_auroc"})[
        ["model", "mode", "dataset", "fold", "paper_bacc", "paper_auroc"]
    ]


def compare_fold(per_set: dict[str, dict[str, float]], model: str, mode: str, fold: int) -> pd.DataFrame:
    """One fold model's balanced accuracy and AUROC per test set beside the paper's same fold.

    `per_set` maps a dataset key (e.g. `amibr/test`) to that fold's metrics.
    """
    ref = published_per_fold()
    ref = ref[(ref["model"] == model) & (ref["mode"] == mode) & (ref["fold"] == fold)].set_index("dataset")
    rows = []
    for dataset, m in sorted(per_set.items()):
        if dataset not in ref.index:
            continue
        rows.append(
            {
                "dataset": dataset,
                "bacc": m["balanced_accuracy"],
                "paper_bacc": float(ref.loc[dataset, "paper_bacc"]),
                "delta_bacc": m["balanced_accuracy"] - float(ref.loc[dataset, "paper_bacc"]),
                "auroc": m["auroc"],
                "paper_auroc": float(ref.loc[dataset, "paper_auroc"]),
            }
        )
    return pd.DataFrame(rows)


TOLERANCE = (
    "reproduced when |our mean − the paper's| ≤ 2 standard errors of that difference: "
    "sqrt(our SD²/our n + the paper's SD²/5), both SDs ddof 0 as the paper's np.std; "
    "a side with fewer than two values borrows the other side's SD"
)
"""The reproduction verdict's rule, printed beside it so a reader can judge it."""


def judge_reproduction(scores: dict[str, list[float]], model: str, mode: str) -> pd.DataFrame:
    """Our fold (and seed) balanced accuracies per test set against the paper's fold mean ± SD.

    `scores` maps a dataset key to every fold model's balanced accuracy on it (folds × seeds).
    One fold cannot confirm a reproduction (the published folds of one model span several
    points), so the verdict weighs the difference of means by both sides' spread (`TOLERANCE`).
    """
    ref = published()
    ref = ref[(ref["model"] == model) & (ref["mode"] == mode)].set_index("dataset")
    rows = []
    for dataset, values in sorted(scores.items()):
        if dataset not in ref.index or not values:
            continue
        ours = pd.Series(values, dtype=float)
        paper_mean = float(ref.loc[dataset, "paper_bacc_mean"])
        paper_sd = float(ref.loc[dataset, "paper_bacc_std"])
        our_sd = float(ours.std(ddof=0)) if len(ours) > 1 else paper_sd
        se = (our_sd**2 / len(ours) + paper_sd**2 / 5) ** 0.5
        delta = float(ours.mean()) - paper_mean
        rows.append(
            {
                "dataset": dataset,
                "n": len(ours),
                "bacc_mean": float(ours.mean()),
                "bacc_sd_ddof0": float(ours.std(ddof=0)) if len(ours) > 1 else float("nan"),
                "paper_mean": paper_mean,
                "paper_sd_ddof0": paper_sd,
                "delta": delta,
                "tolerance": 2 * se,
                "reproduced": abs(delta) <= 2 * se,
            }
        )
    return pd.DataFrame(rows)
