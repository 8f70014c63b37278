"""Rows for the one-screen summary of a run (mean ± std over folds, ensemble, TTA)."""

from __future__ import annotations

from typing import Any


def fmt_mean_std(entry: dict[str, Any]) -> str:
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def summary_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """One row per evaluated set, validation last."""
    rows = []
    sets = summary.get("sets", {})
    for key in sorted(sets, key=lambda k: (k.endswith("/val"), k)):
        s = sets[key]
        row = {
            "dataset": key,
            "n": str(s["n"]),
            "folds": str(len(s["per_fold"])),
            "balanced_accuracy": fmt_mean_std(s["summary"]["balanced_accuracy"]),
            "auroc": fmt_mean_std(s["summary"]["auroc"]),
            "ensemble_bacc": f"{s['ensemble']['balanced_accuracy']:.4f}" if "ensemble" in s else "-",
            "tta_bacc": fmt_mean_std(s["tta"]["summary"]["balanced_accuracy"]) if "tta" in s else "-",
        }
        rows.append(row)
    return rows
