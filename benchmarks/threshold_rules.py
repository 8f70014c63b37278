"""Threshold rules compared out of sample on finished runs' validation predictions (never a test set).

For each run (a `mitobench train` or `mitobench run` run folder with two folds or more), each fold
is held out in turn and every rule of `evaluate/thresholds.py` chooses a threshold on the others;
prints, per rule, the held-out balanced accuracy (mean over folds), the spread of the thresholds a
rule chose (SD over the held-out folds, ddof 1: how much it moves with the figures it sees) and the
threshold it gives on every fold pooled (what a model trained on all the figures would inherit).
A markdown table per run; `--json` writes the per-fold rows too.

Usage: python benchmarks/threshold_rules.py results/s42 results/t42 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mitobench.benchmark.distil import pooled_validation
from mitobench.errors import ConfigError
from mitobench.evaluate.thresholds import ALL_RULES, POOLED_RULES, threshold_transfer
from mitobench.metrics.binary import balanced_accuracy
from mitobench.runs.rundir import RunDir


def compare(run: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per rule: mean held-out balanced accuracy, threshold SD and pooled threshold; and the rows."""
    folds = RunDir(run).finished_folds()
    per_fold = {k: pooled_validation(run, [k]) for k in folds}
    rows = threshold_transfer(per_fold, ALL_RULES)
    pooled = pd.concat(per_fold.values(), ignore_index=True)
    y, p = pooled["label"].to_numpy(), pooled["prob"].to_numpy()
    summary = rows.groupby("rule", sort=False).agg(
        balanced_accuracy=("balanced_accuracy", "mean"),
        threshold_sd=("threshold", lambda t: t.std(ddof=1)),
    )
    summary["pooled_threshold"] = [
        POOLED_RULES[r](y, p) if r in POOLED_RULES else float("nan") for r in summary.index
    ]
    summary["pooled_balanced_accuracy"] = [
        balanced_accuracy(y, p >= t) if t == t else float("nan") for t in summary["pooled_threshold"]
    ]
    return summary, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--json", type=Path, help="Also write every run's per-fold rows here.")
    args = parser.parse_args()
    if args.json and args.json.exists():
        parser.error(f"{args.json} exists: pass another --json path (results are never overwritten)")
    for run in args.runs:
        if len(RunDir(run).finished_folds()) < 2:
            parser.error(
                f"{run}: not a run folder with two finished folds or more (pass results/NAME/runs/RUN)"
            )
    out = {}
    for run in args.runs:
        try:
            summary, rows = compare(run)
        except ConfigError as exc:
            parser.error(str(exc))
        print(f"\n{run} (folds {', '.join(map(str, sorted(rows['fold'].unique())))})\n")
        print("| rule | held-out bal. acc (mean) | threshold SD | pooled threshold | pooled bal. acc |")
        print("|---|---:|---:|---:|---:|")
        for rule, r in summary.iterrows():
            pooled = "–" if r.pooled_threshold != r.pooled_threshold else f"{r.pooled_threshold:.3f}"
            pooled_ba = "–" if pooled == "–" else f"{r.pooled_balanced_accuracy:.4f}"
            print(f"| {rule} | {r.balanced_accuracy:.4f} | {r.threshold_sd:.3f} | {pooled} | {pooled_ba} |")
        out[str(run)] = {"summary": summary.reset_index().to_dict(orient="records"),
                         "per_fold": rows.to_dict(orient="records")}  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
