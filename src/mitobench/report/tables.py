"""The results table: per model × mode × dataset, mean ± std over folds, bootstrap CIs,
the fold ensemble, and, beside runs of the `paper` preset only, the paper's published figure.

Spread: `*_std` is the sample std over folds (ddof 1); `*_std_pop` the population std (ddof 0),
the paper's `np.std`, which is what is shown beside a published figure.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mitobench.data.splits import N_FOLDS
from mitobench.metrics.binary import ensemble_scores, shown_metrics
from mitobench.metrics.bootstrap import SEED as CI_SEED
from mitobench.metrics.bootstrap import bootstrap_ci
from mitobench.paths import atomic_write_text
from mitobench.recipes.config import ModeOptions
from mitobench.report.published import PAPER_PRESET, PAPER_TRAIN, published, published_per_fold
from mitobench.report.runs import RUN_KEYS, run_sets


def paper_conditions(jobs: pd.DataFrame, paper_sha: str) -> dict[tuple, str]:
    """Per `paper` run: why its figures may not stand beside the published ones ("" when they may).

    A published figure is the protocol unchanged on the paper's five folds; a run with `--set`
    overrides, other LoRA/probe settings, other folds or fewer folds is something else.
    `jobs` holds the run keys, `fold`, `spec` (JSON) and `folds_sha256` of every finished job.
    """
    defaults = ModeOptions().dump()
    out: dict[tuple, str] = {}
    for run, part in jobs[jobs["preset"] == PAPER_PRESET].groupby(RUN_KEYS):
        specs = [json.loads(s or "{}") for s in part["spec"]]
        reasons = []
        changed = sorted({k for s in specs for k in s.get("train", {})})
        if changed:
            reasons.append("settings changed (" + ", ".join(changed) + ")")
        for block, default in defaults.items():
            if any(s.get(block, default) != default for s in specs):
                reasons.append(f"{block} settings changed")
        on_paper = set(part.loc[part["folds_sha256"] == paper_sha, "fold"])
        if len(on_paper) < len(part):
            reasons.append("not the paper's folds")
        elif len(on_paper) < N_FOLDS:
            reasons.append(f"{len(on_paper)} of the paper's {N_FOLDS} folds")
        out[tuple(run)] = "; ".join(reasons)
    return out


def results_table(
    preds: pd.DataFrame,
    metrics: pd.DataFrame,
    groups: dict[str, dict[str, str]] | None = None,
    n_boot: int = 1000,
    conditions: dict[tuple, str] | None = None,
) -> pd.DataFrame:
    """One row per (run, dataset); validation folds are left out (they differ per fold).

    `conditions` (from `paper_conditions`) keeps the published figure from `paper` runs that did
    not follow the protocol unchanged on the five paper folds, and says why (`paper_note`).
    """
    groups = groups or {}
    rows = []
    for rs in run_sets(preds, metrics):
        per_fold = rs.scores  # stored when each fold finished; only the ensemble is scored here
        g = groups.get(rs.dataset)
        slide = np.array([g.get(s, s) for s in rs.samples]) if g else None
        ci = bootstrap_ci(rs.labels, rs.probs, rs.thresholds, slide, n_boot=n_boot) if n_boot else {}
        ens = ensemble_scores(rs.labels, rs.probs, rs.thresholds)
        row: dict[str, object] = {
            **dict(zip(RUN_KEYS, rs.run, strict=True)),
            "dataset": rs.dataset,
            "n": len(rs.labels),
            "folds": len(rs.folds),
        }
        for m in shown_metrics():  # every registered metric marked `shown`, in registry order
            values = np.array([f[m.name] for f in per_fold])
            low, high = ci.get(m.name, (np.nan, np.nan))
            row |= {
                f"{m.column}_mean": values.mean(),
                f"{m.column}_std": values.std(ddof=1) if len(values) > 1 else np.nan,
                f"{m.column}_std_pop": values.std(ddof=0),
                f"{m.column}_ci_low": low,
                f"{m.column}_ci_high": high,
                f"ensemble_{m.column}": ens[m.name],
            }
        row |= {"ci_resampling": "slides" if g else "figures", "ci_resamples": n_boot, "ci_seed": CI_SEED}
        rows.append(row)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.merge(published(), on=["model", "mode", "dataset"], how="left")
    paper_cols = ["paper_bacc_mean", "paper_bacc_std", "paper_auroc_mean"]
    # other recipes, or other training data: no published figure
    table.loc[(table["preset"] != PAPER_PRESET) | (table["train_data"] != PAPER_TRAIN), paper_cols] = np.nan
    notes = conditions or {}
    table["paper_note"] = [notes.get(tuple(r), "") for r in table[RUN_KEYS].itertuples(index=False)]
    table.loc[table["paper_note"] != "", paper_cols] = np.nan
    table["delta_bacc"] = table["bacc_mean"] - table["paper_bacc_mean"]
    return table


def per_fold_table(metrics: pd.DataFrame, fold_sha: pd.DataFrame, paper_sha: str) -> pd.DataFrame:
    """Ours vs published per fold, for `paper` runs whose jobs trained on the paper's folds.

    `fold_sha` has (model, mode, preset, fold, folds_sha256) per finished job; a job on other folds
    (another split, or one made before folds were recorded) is left out: its fold k is not the paper's.
    """
    m = metrics[(metrics["variant"] == "fold") & metrics["metric"].isin(["balanced_accuracy", "auroc"])]
    m = m[(m["preset"] == PAPER_PRESET) & ~m["dataset"].str.endswith("/val")]
    same = fold_sha[fold_sha["folds_sha256"] == paper_sha][[*RUN_KEYS, "fold"]]
    m = m.merge(same, on=[*RUN_KEYS, "fold"])
    if m.empty:
        return pd.DataFrame()
    wide = m.pivot_table(index=[*RUN_KEYS, "dataset", "fold"], columns="metric", values="value").reset_index()
    wide = wide.rename(columns={"balanced_accuracy": "bacc"}).merge(
        published_per_fold(), on=["model", "mode", "dataset", "fold"], how="inner"
    )
    wide["delta_bacc"] = wide["bacc"] - wide["paper_bacc"]
    return wide[[*RUN_KEYS, "dataset", "fold", "bacc", "paper_bacc", "delta_bacc", "auroc", "paper_auroc"]]


def _pm(mean: float, std: float) -> str:
    """Mean ± SD; one fold has no spread, so it says so instead of ± 0.0000."""
    return f"{mean:.4f} (1 fold, no SD)" if np.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _ci(low: float, high: float) -> str:
    return "–" if np.isnan(low) else f"[{low:.3f}, {high:.3f}]"


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The human-readable columns, formatted the same way everywhere."""

    def paper(row: pd.Series) -> str:
        if row.get("paper_note"):
            return f"not shown: {row['paper_note']}"
        return "–" if pd.isna(row["paper_bacc_mean"]) else _pm(row["paper_bacc_mean"], row["paper_bacc_std"])

    # beside a published figure, the paper's convention (np.std, ddof 0); elsewhere the sample std
    beside = table["paper_bacc_mean"].notna()
    columns: dict[str, object] = {
        "model": table["model"],
        "mode": table["mode"],
        "preset": table["preset"],
        "trained on": table["train_data"],
        "dataset": table["dataset"],
        "folds": table["folds"],
        "± is": np.where(beside, "SD, ddof 0 (as paper)", "SD, ddof 1"),
    }
    for m in shown_metrics():
        c = m.column
        sd = np.where(beside, table[f"{c}_std_pop"], table[f"{c}_std"])
        columns[f"{m.label} (mean ± SD)"] = [_pm(v, d) for v, d in zip(table[f"{c}_mean"], sd, strict=True)]
        columns[f"{m.label} 95% CI"] = [
            _ci(lo, hi) for lo, hi in zip(table[f"{c}_ci_low"], table[f"{c}_ci_high"], strict=True)
        ]
    columns["ensemble bal. acc"] = [f"{v:.4f}" for v in table["ensemble_bacc"]]
    columns["paper bal. acc (± ddof 0)"] = [paper(r) for _, r in table.iterrows()]
    columns["Δ vs paper"] = ["–" if pd.isna(d) else f"{d:+.4f}" for d in table["delta_bacc"]]
    return pd.DataFrame(columns)


def write_tables(table: pd.DataFrame, folder: Path, header: str = "") -> dict[str, Path]:
    """tables.csv (raw numbers), tables.md and tables.tex (formatted); `header` opens tables.md."""
    folder.mkdir(parents=True, exist_ok=True)
    shown = display_table(table) if not table.empty else pd.DataFrame()
    paths = {"csv": folder / "tables.csv", "md": folder / "tables.md", "tex": folder / "tables.tex"}
    atomic_write_text(paths["csv"], table.to_csv(index=False))
    atomic_write_text(
        paths["md"],
        (f"{header}\n\n" if header else "")
        + (shown.to_markdown(index=False) + "\n" if not shown.empty else "(no results)\n"),
    )
    atomic_write_text(paths["tex"], shown.to_latex(index=False, escape=True) if not shown.empty else "")
    return paths
