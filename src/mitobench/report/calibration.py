"""`mitobench report --calibrate`: temperature scaling fitted on each fold's validation figures.

Every fold model gets one temperature, fitted on its own validation fold's stored predictions
(`<train>/val`: never a test set), and applied to its test-set probabilities; the fold ensemble
averages the scaled probabilities. The table gives ECE before and after, per test set; the calls
(and so balanced accuracy and AUROC) do not change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mitobench.metrics.calibration import apply_temperature, ece, fit_temperature
from mitobench.report.runs import RUN_KEYS, run_sets


def fold_temperatures(preds: pd.DataFrame) -> dict[tuple, float]:
    """(run keys..., fold) -> the temperature fitted on that fold model's validation predictions."""
    val = preds[preds["dataset"].str.endswith("/val")]
    return {
        tuple(key): fit_temperature(part["label"].to_numpy(), part["prob"].to_numpy())
        for key, part in val.groupby([*RUN_KEYS, "fold"])
    }


def calibration_table(preds: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per run and test set: ECE of the fold models (mean) and of the ensemble, before and after
    temperature scaling, and the temperatures. Runs without validation predictions are left out."""
    temps = fold_temperatures(preds)
    rows = []
    for rs in run_sets(preds, metrics):
        keys = [tuple([*rs.run, f]) for f in rs.folds]
        if any(k not in temps for k in keys):
            continue
        t = [temps[k] for k in keys]
        scaled = np.stack([apply_temperature(p, v) for p, v in zip(rs.probs, t, strict=True)])
        rows.append(
            {
                **dict(zip(RUN_KEYS, rs.run, strict=True)),
                "dataset": rs.dataset,
                "folds": len(rs.folds),
                "temperatures": " ".join(f"{v:.3f}" for v in t),
                "ece_mean": float(np.mean([ece(rs.labels, p) for p in rs.probs])),
                "ece_scaled_mean": float(np.mean([ece(rs.labels, p) for p in scaled])),
                "ensemble_ece": ece(rs.labels, rs.ensemble),
                "ensemble_ece_scaled": ece(rs.labels, scaled.mean(axis=0)),
            }
        )
    return pd.DataFrame(rows)
