"""Plots (PNG and SVG): balanced accuracy per model, ROC curves, confusion matrices, reliability."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from mitobench import ATYPICAL, CLASS_NAMES, NORMAL
from mitobench.metrics.calibration import BINS, bin_index, ece

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_curve

from mitobench.paths import atomic_path
from mitobench.report.runs import RUN_KEYS, run_label, run_sets


def _save(fig: plt.Figure, folder: Path, name: str) -> Path:
    """PNG and SVG, each written atomically (a full disk leaves the previous plot)."""
    try:
        for fmt, dpi in (("png", 110), ("svg", None)):
            with atomic_path(folder / f"{name}.{fmt}") as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi, bbox_inches="tight")
    finally:
        plt.close(fig)
    return folder / f"{name}.png"


def _spread(row: pd.Series) -> float:
    """The paper's np.std (ddof 0) beside its published figure, else the sample std."""
    return float(row["bacc_std_pop"] if pd.notna(row["paper_bacc_mean"]) else row["bacc_std"])


def bacc_bars(table: pd.DataFrame, folder: Path) -> Path:
    """Mean ± std balanced accuracy per run and dataset, with the paper's figure where published."""
    datasets = sorted(table["dataset"].unique())
    runs = table[RUN_KEYS].drop_duplicates().itertuples(index=False)
    runs = [tuple(r) for r in runs]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(runs) * len(datasets) / 2), 4))
    width = 0.8 / max(1, len(datasets))
    for j, ds in enumerate(datasets):
        sub = table[table["dataset"] == ds].set_index(RUN_KEYS)
        xs = np.arange(len(runs)) + j * width
        means = [sub.loc[r, "bacc_mean"] if r in sub.index else np.nan for r in runs]
        stds = [_spread(sub.loc[r]) if r in sub.index else 0 for r in runs]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=ds)
        paper = [sub.loc[r, "paper_bacc_mean"] if r in sub.index else np.nan for r in runs]
        ax.scatter(xs, paper, marker="_", s=300, color="black", zorder=3)
    ax.set_xticks(np.arange(len(runs)) + width * (len(datasets) - 1) / 2)
    ax.set_xticklabels([run_label(r) for r in runs], rotation=20, ha="right")
    ax.set_ylabel("balanced accuracy, mean ± SD over folds\n(ddof 0 beside the paper's mark, else ddof 1)")
    ax.set_ylim(0.4, 1.0)
    ax.axhline(0.5, color="grey", lw=0.5)
    ax.legend(title="dataset (black: paper)", fontsize=8)
    ax.set_title("Balanced accuracy per model")
    return _save(fig, folder, "balanced_accuracy")


def _ensembles(preds: pd.DataFrame, metrics: pd.DataFrame, dataset: str):
    for rs in run_sets(preds, metrics, dataset):
        yield rs.label, rs.labels, rs.ensemble, rs.ensemble_threshold


def _roc_axes(ax: plt.Axes, title: str, legend_size: int) -> None:
    """Chance diagonal, axis labels, title and legend of a plot in ROC space."""
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls="--")
    ax.set_xlabel("1 − specificity")
    ax.set_ylabel("sensitivity (atypical)")
    ax.set_title(title)
    ax.legend(fontsize=legend_size, loc="lower right")


def roc_plot(preds: pd.DataFrame, metrics: pd.DataFrame, dataset: str, folder: Path) -> Path:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, y, p, _ in _ensembles(preds, metrics, dataset):
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=label)
    _roc_axes(ax, f"ROC, fold ensemble: {dataset}", 7)
    return _save(fig, folder, f"roc_{dataset.replace('/', '_')}")


def confusion_plot(preds: pd.DataFrame, metrics: pd.DataFrame, dataset: str, folder: Path) -> Path:
    items = list(_ensembles(preds, metrics, dataset))
    fig, axes = plt.subplots(1, len(items), figsize=(3.2 * len(items), 3.2), squeeze=False)
    for ax, (label, y, p, t) in zip(axes[0], items, strict=True):
        cm = confusion_matrix(y, (p >= t).astype(int), labels=[1, 0])
        ax.imshow(cm, cmap="Blues")
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, str(v), ha="center", va="center", color="black")
        names = [CLASS_NAMES[ATYPICAL].lower(), CLASS_NAMES[NORMAL].lower()]
        ax.set_xticks([0, 1], names)
        ax.set_yticks([0, 1], names)
        ax.set_xlabel("predicted")
        ax.set_ylabel("truth")
        ax.set_title(label, fontsize=8)
    fig.suptitle(f"Confusion matrices, fold ensemble: {dataset}")
    return _save(fig, folder, f"confusion_{dataset.replace('/', '_')}")


def reliability_plot(
    preds: pd.DataFrame, metrics: pd.DataFrame, dataset: str, folder: Path, bins: int = BINS
) -> Path:
    """Per run, the fold ensemble's fraction atypical against its mean P(atypical) in equal-width
    bins (bins of fewer than 5 figures left out), with its expected calibration error."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for label, y, p, _ in _ensembles(preds, metrics, dataset):
        which = bin_index(p, bins)  # the ECE's bins: the legend's ECE is this curve's
        label = f"{label} (ECE {ece(y, p, bins):.3f})"
        xs, ys = [], []
        for b in range(bins):
            m = which == b
            if m.sum() >= 5:
                xs.append(p[m].mean())
                ys.append(y[m].mean())
        ax.plot(xs, ys, marker="o", label=label)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.5, ls="--")
    ax.set_xlabel("mean predicted probability (atypical)")
    ax.set_ylabel("fraction atypical")
    ax.set_title(f"Reliability, fold ensemble: {dataset}")
    ax.legend(fontsize=7)
    return _save(fig, folder, f"reliability_{dataset.replace('/', '_')}")


def raters_plot(
    agreement: dict, models: dict[str, tuple[np.ndarray, float]], labels: np.ndarray, folder: Path
) -> Path:
    """Where the models sit among the experts, in ROC space: each expert scored against the
    majority of the others (black), each model against the same references (its colour), and
    each model's ROC curve against the full majority."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, (probs, _)) in enumerate(models.items()):
        fpr, tpr, _ = roc_curve(labels, probs)
        ax.plot(fpr, tpr, color=colours[i % len(colours)], lw=1, label=f"{name} (ROC vs majority)")
    for ref, scores in agreement["leave_one_out"].items():
        left_out = ref.split()[-1]  # "vs majority of others than K": the expert left out
        for who, s in scores.items():
            x, y = 1 - s["specificity"], s["sensitivity"]
            if who.startswith("expert "):
                ax.scatter(x, y, marker="X", s=70, color="black", zorder=3)
                colour, offset = "black", (5, -9)  # below right: experts often sit close together
            else:
                i = list(models).index(who) if who in models else 0
                colour, offset = colours[i % len(colours)], (4, 4)
                ax.scatter(x, y, marker="o", s=30, color=colour, zorder=3, alpha=0.8)
            # each point names the expert its reference leaves out, above the markers
            ax.annotate(
                left_out,
                (x, y),
                textcoords="offset points",
                xytext=offset,
                fontsize=7,
                color=colour,
                zorder=5,
            )
    ax.scatter([], [], marker="X", color="black", label="expert k vs the others' majority")
    ax.scatter([], [], marker="o", color="grey", label="model vs that same reference (k)")
    _roc_axes(ax, f"Models among the experts: {agreement['dataset']}", 6)
    return _save(fig, folder, f"raters_{agreement['dataset'].replace('/', '_')}")
