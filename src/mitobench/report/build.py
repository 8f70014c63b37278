"""`mitobench report`: everything a results directory holds, as tables, plots and one HTML page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mitobench import CLASS_NAMES, machine
from mitobench.benchmark.store import STORE_FILE, ResultsStore
from mitobench.data.cache import ImageCache
from mitobench.data.dataset import Dataset, vote_columns
from mitobench.data.registry import DATASETS, load_present
from mitobench.data.splits import PAPER_FOLDS_SHA256
from mitobench.errors import ConfigError
from mitobench.evaluate.label_noise import noise_analysis
from mitobench.evaluate.raters import agreement
from mitobench.metrics.bootstrap import SEED as CI_SEED
from mitobench.paths import atomic_write_text
from mitobench.report import html as html_mod
from mitobench.report import plots
from mitobench.report.calibration import calibration_table
from mitobench.report.runs import run_sets
from mitobench.report.tables import (
    display_table,
    paper_conditions,
    per_fold_table,
    results_table,
    write_tables,
)

GALLERY_SIZE = 24


def _ensemble_calls(preds: pd.DataFrame, metrics: pd.DataFrame, dataset: str) -> dict[str, Any]:
    """Per run: the fold ensemble's probability per sample, and its threshold."""
    return {
        rs.label: (pd.Series(rs.ensemble, index=rs.samples), rs.ensemble_threshold)
        for rs in run_sets(preds, metrics, dataset)
    }


def _gallery(ds: Dataset, calls: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    images = ImageCache().load(ds)
    index = {sid: i for i, sid in enumerate(ds.ids)}
    votes = vote_columns(ds.frame)
    out = {}
    for run, (probs, threshold) in calls.items():
        rows = []
        for sid, p in probs.items():
            i = index.get(sid)
            if i is None:
                continue
            truth = int(ds.labels[i])
            if int(p >= threshold) != truth:
                rows.append((abs(p - threshold), sid, i, truth, p))
        rows.sort(reverse=True)
        items = []
        for _, sid, i, truth, p in rows[:GALLERY_SIZE]:
            v = ds.frame.loc[i, votes].to_numpy() if votes else None
            items.append(
                {
                    "id": sid,
                    "truth": CLASS_NAMES[truth].lower(),
                    "prob": float(p),
                    "votes": f"{int(np.nansum(v))}/{len(v)} atypical" if v is not None else "",
                    "uri": html_mod.array_data_uri(images[i]),
                }
            )
        out[f"{run} — {ds.key}"] = items
    return out


def rater_analysis(
    ds: Dataset, calls: dict[str, Any], n_boot: int = 1000
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, float]]]:
    """Expert agreement on `ds` with every run that scored all of it beside the experts, and the
    label-noise analysis; also the models' (P(atypical), threshold) used."""
    models = {
        run: (probs.reindex(ds.ids).to_numpy(), t)
        for run, (probs, t) in calls.items()
        if probs.reindex(ds.ids).notna().all()
    }
    result = agreement(ds, {run: (p >= t).astype(int) for run, (p, t) in models.items()})
    result["label_noise"] = noise_analysis(ds, models, n_boot) if models else {}
    return result, models


def _store_with_results(results_dir: Path) -> ResultsStore:
    """The results store, refused when there is none (opening one would create it: a mistyped
    folder would gain an empty store) or no job in it finished (an empty report is not a success)."""
    if not (results_dir / STORE_FILE).is_file():
        raise ConfigError(
            f"{results_dir} holds no results store",
            "pass the folder a grid wrote (mitobench run CONFIG --results DIR)",
        )
    store = ResultsStore(results_dir)
    if not store.finished_jobs():
        raise ConfigError(
            f"{results_dir / STORE_FILE} holds no finished job: nothing to report",
            f"run a grid into it first: mitobench run CONFIG --results {results_dir}",
        )
    return store


def stored_dataset(store: ResultsStore, preds: pd.DataFrame, key: str) -> Dataset | None:
    """A scored test set as the store keeps it — each figure's label, slide and the experts' votes
    and subtypes, in the order they were scored — or None when its votes did not travel with the
    predictions (a set without votes, or a store from before they did)."""
    facts = store.figure_facts(key)
    if facts.empty:
        return None
    part = preds[preds["dataset"] == key].drop_duplicates("sample")
    frame = pd.DataFrame(
        {
            "id": part["sample"].astype(str),
            "path": "",
            "label": part["label"].astype(int),
            "group": part["grp"],
        }
    )
    frame = frame.merge(facts.rename(columns={"sample": "id"}), on="id", how="left")
    name, split = key.rsplit("/", 1)
    return Dataset(name, split, frame.reset_index(drop=True))


def _voted_sets(kept: dict[str, Dataset | None], loaded: dict[str, Dataset]) -> list[Dataset]:
    """The scored test sets with two or more experts' votes: as the store keeps them (`kept`, from
    `stored_dataset`), or for a store made before votes were kept, from the data root's `loaded`."""
    out = []
    for key, ds in kept.items():
        ds = ds or loaded.get(key)
        if ds is not None and len(vote_columns(ds.frame)) >= 2:
            out.append(ds)
    return out


def raters_for_results(results_dir: Path, data_root: Path, n_boot: int = 1000) -> list[dict[str, Any]]:
    """`mitobench raters --results DIR`: the analysis on every voted test set the store scored."""
    store = _store_with_results(results_dir)
    preds, metrics = store.predictions(), store.metrics()
    kept = {k: stored_dataset(store, preds, k) for k in _test_sets(preds)}
    loaded = {
        ds.key: ds for ds in load_present(_named([k for k, ds in kept.items() if ds is None]), data_root)[0]
    }
    return [
        rater_analysis(ds, _ensemble_calls(preds, metrics, ds.key), n_boot)[0]
        for ds in _voted_sets(kept, loaded)
    ]


def _test_sets(preds: pd.DataFrame) -> list[str]:
    return sorted(k for k in preds["dataset"].unique() if not k.endswith("/val"))


def _named(keys: list[str]) -> list[str]:
    """The registry's datasets among `keys` (a user's own sets are not reloaded by name)."""
    return [k for k in keys if k.split("/")[0] in DATASETS]


def _same_figures(ds: Dataset, preds: pd.DataFrame) -> bool:
    """The data root's set holds the figures the store scored, with the same labels (else its
    images would not be the ones the gallery names)."""
    part = preds[preds["dataset"] == ds.key].drop_duplicates("sample")
    stored = set(zip(part["sample"].astype(str), part["label"].astype(int), strict=True))
    return stored == set(zip(map(str, ds.ids), ds.labels.tolist(), strict=True))


def stored_groups(preds: pd.DataFrame) -> dict[str, dict[str, str]]:
    """Each test set's slide per figure, as the store keeps it (sets whose every figure has one):
    the CIs resample whole slides without the data root, the same on any machine."""
    out: dict[str, dict[str, str]] = {}
    if "grp" not in preds:
        return out
    for key, part in preds.groupby("dataset"):
        if part["grp"].notna().all():
            out[str(key)] = dict(zip(part["sample"].astype(str), part["grp"].astype(str), strict=True))
    return out


def _plots(
    table: pd.DataFrame, preds: pd.DataFrame, metrics: pd.DataFrame, keys: list[str], folder: Path
) -> list[Path]:
    """The bar chart of balanced accuracy, and per test set ROC, confusion and reliability."""
    if table.empty:
        return []
    out = [plots.bacc_bars(table, folder)]
    for key in keys:
        out += [
            plots.roc_plot(preds, metrics, key, folder),
            plots.confusion_plot(preds, metrics, key, folder),
            plots.reliability_plot(preds, metrics, key, folder),
        ]
    return out


def _notes(trained_on: str, n_boot: int, no_images: list[str]) -> list[str]:
    """What the page says about where its figures come from and how they were computed."""
    return [
        trained_on + f". Report built on: {machine.label()}.",
        "Balanced accuracy and AUROC: mean ± SD over the fold models (sample SD, ddof 1; beside a published "
        "figure, the paper's np.std, ddof 0, as the column '± is' says); 95% CIs by bootstrap of the "
        f"test figures (whole slides where slides are known; {n_boot} resamples, seed {CI_SEED}). "
        "Ensemble: mean probability of the fold models "
        "at the mean of their thresholds. Atypical is the positive class. Published figures appear only "
        "beside runs of the `paper` preset; per fold only where the run trained on the paper's folds. "
        "ECE: expected calibration error of P(atypical), 10 equal-width bins.",
        "Every figure comes from the results store; images for the gallery of errors from the data "
        "root. No gallery for: " + (", ".join(no_images) or "none") + " (images not in the data root).",
    ]


def build_report(
    results_dir: Path, data_root: Path, n_boot: int = 1000, calibrate: bool = False
) -> dict[str, Path]:
    """Write `report/` under the results directory: tables.{md,csv,tex}, plots/, report.html;
    with `calibrate`, calibration.csv (temperature scaling fitted on the validation folds)."""
    store = _store_with_results(results_dir)
    preds, metrics = store.predictions(), store.metrics()
    folder = results_dir / "report"
    keys = _test_sets(preds)
    datasets = {  # only for images (the gallery) and a store made before slides and votes were kept
        ds.key: ds for ds in load_present(_named(keys), data_root)[0] if _same_figures(ds, preds)
    }
    groups = {
        k: dict(zip(ds.ids, ds.frame["group"].astype(str), strict=True))
        for k, ds in datasets.items()
        if ds.frame["group"].notna().all()
    } | stored_groups(preds)
    conditions = paper_conditions(store.job_specs(), PAPER_FOLDS_SHA256)
    table = results_table(preds, metrics, groups, n_boot, conditions)
    trained_on = "Trained on: " + (
        "; ".join(f"{label} ({n} job{'s' if n > 1 else ''})" for label, n in store.machines().items()) or "-"
    )
    paths = write_tables(table, folder, header=trained_on)
    folds = per_fold_table(metrics, store.fold_fingerprints(), PAPER_FOLDS_SHA256)
    if not folds.empty:
        paths["per_fold"] = folder / "per_fold.csv"
        atomic_write_text(paths["per_fold"], folds.to_csv(index=False, float_format="%.4f"))
    extra = {"Per fold: ours vs published (paper preset, paper folds)": folds}
    if calibrate:
        scaled = calibration_table(preds, metrics)
        paths["calibration"] = folder / "calibration.csv"
        atomic_write_text(paths["calibration"], scaled.to_csv(index=False, float_format="%.4f"))
        extra[
            "Calibration: ECE before and after temperature scaling (fitted on each fold's validation set)"
        ] = scaled
    plot_paths = _plots(table, preds, metrics, keys, folder / "plots")
    calls = {key: _ensemble_calls(preds, metrics, key) for key in keys}  # for the gallery and raters
    galleries = {}
    for key, ds in datasets.items():
        galleries.update(_gallery(ds, calls[key]))
    raters = []
    kept = {key: stored_dataset(store, preds, key) for key in keys}
    for ds in _voted_sets(kept, datasets):
        r, models = rater_analysis(ds, calls[ds.key], n_boot)
        raters.append(r)
        if models:
            plot_paths.append(plots.raters_plot(r, models, ds.labels, folder / "plots"))
    notes = _notes(trained_on, n_boot, [k for k in keys if k not in datasets])
    page = html_mod.render(
        f"mitobench report: {results_dir.name}",
        display_table(table) if not table.empty else table,
        plot_paths,
        galleries,
        raters,
        notes,
        extra,
    )
    paths["html"] = folder / "report.html"
    atomic_write_text(paths["html"], page)
    return paths
