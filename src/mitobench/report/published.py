"""The paper's published figures, shipped with the package (see reference/SOURCE.md)."""

from __future__ import annotations

from importlib import resources

import pandas as pd

MODES = {"end-to-end": "e2e", "linear-probe": "probe", "lora": "lora"}
DATASETS = {"AMi-Br": "amibr/test", "AtNorM-Br": "atnorm-br/test", "AtNorM-MD": "atnorm-md/test"}


def published() -> pd.DataFrame:
    """Columns: model (our registry name), mode, dataset (our key), bacc_mean, bacc_std, auroc_mean."""
    from mitobench.models.registry import all_specs

    by_title = {s.title: s.name for s in all_specs()}
    text = resources.files("mitobench.reference").joinpath("published_results.csv").read_text()
    from io import StringIO

    frame = pd.read_csv(StringIO(text))
    return pd.DataFrame(
        {
            "model": frame["model"].map(by_title),
            "mode": frame["mode"].map(MODES),
            "dataset": frame["dataset"].map(DATASETS),
            "paper_bacc_mean": frame["balanced_accuracy_mean"],
            "paper_bacc_std": frame["balanced_accuracy_std"],
            "paper_auroc_mean": frame["auroc_mean"],
        }
    )
