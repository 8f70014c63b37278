"""Rows for the one-screen summary of a run (mean ± std over folds, ensemble, TTA)."""

from __future__ import annotations

from typing import Any

from mitobench.metrics.binary import shown_metrics


def fmt_mean_std(entry: dict[str, Any], folds: int = 2) -> str:
    """Mean ± SD over folds; one fold has no spread, so it says so instead of ± 0.0000."""
    if folds < 2:
        return f"{entry['mean']:.4f} (1 fold, no SD)"
    return f"{entry['mean']:.4f} ± {entry['std']:.4f}"


def summary_headers() -> dict[str, str]:
    """Row key -> column title, the shown metrics read from the registry."""
    return {
        "dataset": "dataset",
        "n": "n",
        "folds": "folds",
        **{m.name: f"{m.label} (mean ± SD, ddof 1)" for m in shown_metrics()},
        "ensemble_bacc": "ensemble bal. acc",
        "tta_bacc": "TTA bal. acc",
    }


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
            **{
                m.name: fmt_mean_std(s["summary"][m.name], len(s["per_fold"]))
                if m.name in s["summary"]
                else "-"
                for m in shown_metrics()
            },
            "ensemble_bacc": f"{s['ensemble']['balanced_accuracy']:.4f}" if "ensemble" in s else "-",
            "tta_bacc": (
                fmt_mean_std(s["tta"]["summary"]["balanced_accuracy"], len(s["per_fold"]))
                if "tta" in s
                else "-"
            ),
        }
        rows.append(row)
    return rows
