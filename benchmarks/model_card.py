"""The figures of docs/model-card.md, from a finished `mitobench distil` results folder.

Per test set: the student's balanced accuracy, AUROC and ECE with bootstrap 95 % CIs (whole
slides resampled where the set has slides), the teachers' fold mean ± SD (ddof 1) and their fold
ensemble beside it, the scores by expert agreement (`evaluate/label_noise.py`), and a reliability
diagram of both; on the fold students' validation predictions only, what the final student's
threshold rule costs against each fold's own best threshold (`evaluate/thresholds.py`). Everything
is read from the runs' stored predictions: nothing is retrained or re-chosen. Writes
OUT/figures.json, OUT/tables.md (the card's tables) and OUT/reliability_<set>.png.

Usage: python benchmarks/model_card.py results/amibr-lite0 --data-root ../shared/data --out docs/model-card
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mitobench.benchmark.distil import distilled_runs, pooled_validation
from mitobench.benchmark.store import ResultsStore
from mitobench.data.dataset import vote_columns
from mitobench.data.registry import load
from mitobench.evaluate.label_noise import noise_analysis
from mitobench.evaluate.thresholds import RULES, threshold_transfer
from mitobench.inference.shipped import ShippedModel, shipped_dir
from mitobench.metrics.binary import compute
from mitobench.metrics.bootstrap import bootstrap_ci
from mitobench.metrics.calibration import apply_temperature, ece, fit_temperature
from mitobench.report.plots import reliability_plot
from mitobench.report.runs import run_sets
from mitobench.runs.rundir import RunDir, set_key

SHOWN = ("balanced_accuracy", "auroc", "ece")
STUDENT = "student (shipped)"
FOLD_STUDENT = "fold-0 student (80 % of the figures)"


def student_frames(run: RunDir, label: str = STUDENT, k: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A student's fold `k` predictions and scores in the results store's layout, under `label`."""
    fold = run.fold(k)
    spec = run.read_record()["spec"]
    keys = {"model": spec["model"], "mode": spec["mode"], "preset": label, "train_data": spec["train_data"]}
    preds = []
    for csv in fold.prediction_files():
        frame = pd.read_csv(csv, dtype={"group": str})
        preds.append(
            pd.DataFrame({**keys, "fold": k, "dataset": set_key(csv), "sample": frame["id"].astype(str),
                          "label": frame["label"], "prob": frame["prob"]})
        )  # fmt: skip
    metrics = [
        {**keys, "fold": k, "dataset": dataset, "variant": "fold", "metric": name, "value": value}
        for dataset, variants in fold.scores().items()
        for name, value in variants["fold"].items()
    ]
    return pd.concat(preds, ignore_index=True), pd.DataFrame(metrics)


def _with_ci(labels, probs, thresholds, groups, n_boot: int) -> dict[str, Any]:
    """Each shown metric of the fold mean (one model: itself) with its bootstrap 95 % CI."""
    per_fold = [compute(labels, p, t) for p, t in zip(probs, thresholds, strict=True)]
    ci = bootstrap_ci(labels, probs, thresholds, groups, n_boot=n_boot)
    out: dict[str, Any] = {}
    for m in SHOWN:
        values = [f[m] for f in per_fold]
        out[m] = {"value": float(np.mean(values)), "ci95": [float(x) for x in ci[m]]}
        if len(values) > 1:
            out[m]["sd_ddof1"] = float(np.std(values, ddof=1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path)
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("docs/model-card"))
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument(
        "--shipped",
        help="Add the figures benchmarks/ship_model.py measured on a shipped model's files (amibr-lite0).",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    fold_run, final_run = distilled_runs(args.results)
    store = ResultsStore(args.results)
    # the shipped model (the final student where there is one) and, beside a final student, the
    # fold-0 student: the same recipe on 80 % of the figures
    folds = RunDir(fold_run).finished_folds()
    runs = {STUDENT: final_run or fold_run, **({FOLD_STUDENT: fold_run} if final_run else {})}
    students = {label: student_frames(RunDir(run), label, folds[0]) for label, run in runs.items()}
    preds = pd.concat([store.predictions(), *(p for p, _ in students.values())], ignore_index=True)
    metrics = pd.concat([store.metrics(), *(m for _, m in students.values())], ignore_index=True)
    figures: dict[str, Any] = {"bootstrap": args.bootstrap, "sets": {}}
    # the recipe's out-of-fold predictions, never a test set: read once, per fold and pooled
    per_fold = {k: pooled_validation(fold_run, [k]) for k in folds}
    val = pd.concat(per_fold.values(), ignore_index=True)
    temperature = fit_temperature(val["label"].to_numpy(), val["prob"].to_numpy())
    figures["student_temperature"] = {
        "fitted_on": [f"the fold students' validation predictions, folds {', '.join(map(str, folds))}"],
        "n": len(val),
        "value": temperature,
    }
    if len(folds) > 1:  # what the final student's threshold rule costs, out of sample, on validation
        table = threshold_transfer(per_fold)
        figures["threshold_transfer"] = {
            "per_fold": table.to_dict(orient="records"),
            "mean_balanced_accuracy": table.groupby("rule")["balanced_accuracy"].mean().to_dict(),
        }
    shipped_preds = students[STUDENT][0]
    for dataset in sorted(d for d in shipped_preds["dataset"].unique() if not d.endswith("/val")):
        data = load(dataset, args.data_root)
        groups_by_id = dict(zip(data.ids, data.frame["group"], strict=True))
        entry: dict[str, Any] = {"n": len(data), "n_atypical": int(data.labels.sum()), "runs": {}}
        models: dict[str, tuple[np.ndarray, float]] = {}
        for rs in run_sets(preds, metrics, dataset):
            groups = np.array([groups_by_id[s] for s in rs.samples], dtype=object)
            groups = groups if pd.notna(groups).all() else None
            who = (
                rs.run[2]
                if rs.run[2] in (STUDENT, FOLD_STUDENT)
                else f"teachers ({rs.run[2]} preset, {len(rs.folds)} folds)"
            )
            row: dict[str, Any] = {"folds": rs.folds, "thresholds": rs.thresholds.tolist()}
            row["fold_mean"] = _with_ci(rs.labels, rs.probs, rs.thresholds, groups, args.bootstrap)
            if len(rs.folds) > 1:
                ens, thr = rs.ensemble[None], np.array([rs.ensemble_threshold])
                row["ensemble"] = _with_ci(rs.labels, ens, thr, groups, args.bootstrap)
                name = f"{who}: fold ensemble"
            else:
                ens, thr, name = rs.probs, rs.thresholds, who
            order = pd.Series(ens[0], index=rs.samples).reindex(data.ids).to_numpy()
            models[name] = (order, float(thr[0]))
            if who == STUDENT:  # temperature fitted on held-out predictions of the recipe, never a test set
                scaled = apply_temperature(rs.probs[0], temperature)
                row["ece_temperature_scaled"] = float(ece(rs.labels, scaled))
            entry["runs"][who] = row
        if vote_columns(data.frame):
            entry["by_agreement"] = noise_analysis(data, models, args.bootstrap)
        reliability_plot(preds, metrics, dataset, args.out)
        figures["sets"][dataset] = entry
    if args.shipped:  # what benchmarks/ship_model.py measured on the shipped files themselves
        figures["shipped"] = ShippedModel(args.shipped, shipped_dir()).record()["shipped_files_scored"]
    (args.out / "figures.json").write_text(json.dumps(figures, indent=1))
    (args.out / "tables.md").write_text(markdown(figures))
    print(markdown(figures))


def _cell(entry: dict[str, Any], metric: str) -> str:
    low, high = entry[metric]["ci95"]
    sd = f" ± {entry[metric]['sd_ddof1']:.4f}" if "sd_ddof1" in entry[metric] else ""
    return f"{entry[metric]['value']:.4f}{sd} [{low:.3f}, {high:.3f}]"


def markdown(figures: dict[str, Any]) -> str:
    """The card's tables: each model per test set, then the scores by expert agreement."""
    lines = [
        "| test set | model | balanced accuracy [95 % CI] | AUROC [95 % CI] | ECE [95 % CI] |",
        "|---|---|---|---|---|",
    ]
    for dataset, entry in figures["sets"].items():
        for who, row in entry["runs"].items():
            variants = [("fold mean ± SD (ddof 1)" if len(row["folds"]) > 1 else "", row["fold_mean"])]
            if "ensemble" in row:
                variants.append(("fold ensemble", row["ensemble"]))
            for variant, values in variants:
                name = f"{who}, {variant}" if variant else who
                cells = " | ".join(_cell(values, m) for m in SHOWN)
                where = f"{dataset} ({entry['n']}, {entry['n_atypical']} atypical)"
                lines.append(f"| {where} | {name} | {cells} |")
    shipped = figures.get("shipped")
    if shipped:
        lines += [
            "",
            "| test set | shipped files, engine | balanced accuracy | AUROC | ECE | max diff. from ONNX |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for dataset, entry in shipped["sets"].items():
            for engine, sc in entry.items():
                if isinstance(sc, dict):
                    lines.append(
                        f"| {dataset} | {engine} | {sc['balanced_accuracy']:.4f} | {sc['auroc']:.4f} "
                        f"| {sc['ece']:.4f} | {sc['max_abs_diff_from_onnx']:.1e} |"
                    )
        lines.append(f"\nScored on {shipped['machine']}.")
    lines += ["", "| test set | student ECE | student ECE, temperature-scaled |", "|---|---:|---:|"]
    for dataset, entry in figures["sets"].items():
        row = entry["runs"].get(STUDENT, {})
        if "ece_temperature_scaled" in row:
            before, after = row["fold_mean"]["ece"]["value"], row["ece_temperature_scaled"]
            lines.append(f"| {dataset} | {before:.4f} | {after:.4f} |")
    t = figures.get("student_temperature")
    if t:
        lines.append(f"\nTemperature {t['value']:.3f}, fitted on {', '.join(t['fitted_on'])} only.")
    transfer = figures.get("threshold_transfer")
    if transfer:  # validation only: each fold held out, the rule applied from the others
        rows = pd.DataFrame(transfer["per_fold"])
        lines += ["", "| held-out fold | " + " | ".join(RULES) + " |", "|---:|" + "---:|" * len(RULES)]
        for k, fold in rows.groupby("fold"):
            by = fold.set_index("rule")
            ba, thr = by["balanced_accuracy"], by["threshold"]
            cells = " | ".join(f"{ba[r]:.4f} ({thr[r]:.3f})" for r in RULES)
            lines.append(f"| {k} | {cells} |")
        means = transfer["mean_balanced_accuracy"]
        lines.append("| mean | " + " | ".join(f"**{means[r]:.4f}**" for r in RULES) + " |")
    lines += [
        "",
        "| test set | experts agreeing | figures (atypical) | model | balanced accuracy [95 % CI] "
        "| AUROC [95 % CI] |",
        "|---|---|---:|---|---|---|",
    ]
    for dataset, entry in figures["sets"].items():
        noise = entry.get("by_agreement")
        if not noise:
            continue
        for name, scores in noise["models"].items():
            for level, sc in [("all", scores["all"]), *scores["by_level"].items()]:
                ba, au = sc["balanced_accuracy_ci95"], sc["auroc_ci95"]
                lines.append(
                    f"| {dataset} | {level} | {sc['n']} ({sc['n_atypical']}) | {name} "
                    f"| {sc['balanced_accuracy']:.3f} [{ba[0]:.3f}, {ba[1]:.3f}] "
                    f"| {sc['auroc']:.3f} [{au[0]:.3f}, {au[1]:.3f}] |"
                )
            rho = scores["spearman_vote_share"]["rho"]
            lines.append(f"| {dataset} | Spearman ρ with the atypical vote share | | {name} | {rho:.3f} | |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
