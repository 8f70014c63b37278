"""How many fold students does the shipped threshold need? Judged held out on validation predictions.

`mitobench distil --folds F --all-figures` gives the final student the threshold that is best on the
fold students' validation predictions pooled; the final weights do not depend on F. Fewer fold
students make the recipe shorter. This script measures what fewer cost: each fold of a finished run
is held out in turn, and for every set S of m of the other folds the threshold best on S's
validation predictions pooled is scored on the held-out fold. Prints, per m, the mean held-out
balanced accuracy over every (held-out fold, S), its SD and the thresholds' SD (ddof 1), and the
threshold that `--folds SHIP` would ship beside the one from every fold. Never reads a test set.

Usage: python benchmarks/threshold_folds.py results/folds5/student/RUN [--ship 0,1] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from itertools import combinations
from pathlib import Path

import pandas as pd

from mitobench.benchmark.distil import pooled_threshold, pooled_validation
from mitobench.errors import ConfigError, int_list
from mitobench.metrics.binary import balanced_accuracy, best_threshold
from mitobench.paths import atomic_path
from mitobench.runs.rundir import RunDir


def fold_count_transfer(per_fold: dict[int, pd.DataFrame]) -> pd.DataFrame:
    """One row per held-out fold k and set S of the other folds (every size): the threshold best on
    S pooled and fold k's balanced accuracy at it. `per_fold` maps a fold to its validation
    predictions (columns label, prob)."""
    if len(per_fold) < 2:
        raise ValueError("needs the validation predictions of two folds or more")
    rows = []
    for k, held_out in per_fold.items():
        others = [j for j in per_fold if j != k]
        labels, probs = held_out["label"].to_numpy(), held_out["prob"].to_numpy()
        for m in range(1, len(others) + 1):
            for subset in combinations(others, m):
                pooled = pd.concat([per_fold[j] for j in subset], ignore_index=True)
                t = best_threshold(pooled["label"].to_numpy(), pooled["prob"].to_numpy())
                rows.append({"held_out": k, "m": m, "folds": ",".join(map(str, subset)), "threshold": t,
                             "balanced_accuracy": balanced_accuracy(labels, probs >= t)})  # fmt: skip
    return pd.DataFrame(rows)


def summarise(rows: pd.DataFrame) -> pd.DataFrame:
    """Per m: pairs, mean and SD (ddof 1) of the held-out balanced accuracy, thresholds' SD (ddof 1)."""
    return rows.groupby("m").agg(
        pairs=("balanced_accuracy", "size"),
        balanced_accuracy=("balanced_accuracy", "mean"),
        balanced_accuracy_sd=("balanced_accuracy", lambda b: b.std(ddof=1)),
        threshold_sd=("threshold", lambda t: t.std(ddof=1)),
    )


def _folds(text: str) -> list[int]:
    try:
        return sorted(set(int_list(text, "--ship")))
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a run folder with finished folds (validation predictions)")
    parser.add_argument("--ship", type=_folds, default=[0, 1], help="the folds a shorter recipe would train")
    parser.add_argument("--json", type=Path, help="Also write the per-pair rows here.")
    args = parser.parse_args()
    if args.json and args.json.exists():
        parser.error(f"{args.json} exists: pass another --json path (results are never overwritten)")
    folds = RunDir(args.run).finished_folds()
    if len(folds) < 2:
        parser.error(f"{args.run}: not a run folder with two finished folds or more")
    if not args.ship or not set(args.ship) <= set(folds):
        parser.error(f"--ship {args.ship}: not among the run's finished folds {folds}")
    try:  # a fold marked done without its validation predictions is one message, not a traceback
        rows = fold_count_transfer({k: pooled_validation(args.run, [k]) for k in folds})
        ship, every = pooled_threshold(args.run, args.ship), pooled_threshold(args.run, folds)
    except ConfigError as exc:
        parser.error(str(exc))
    summary = summarise(rows)
    print(f"{args.run} (folds {', '.join(map(str, folds))}; validation predictions only)\n")
    print("| threshold from m folds | pairs | held-out bal. acc (mean ± SD) | threshold SD |")
    print("|---:|---:|---:|---:|")
    for m, r in summary.iterrows():
        sd = f"{r.balanced_accuracy_sd:.4f}" if r.pairs > 1 else "–"
        t_sd = f"{r.threshold_sd:.3f}" if r.pairs > 1 else "–"
        print(f"| {m} | {int(r.pairs)} | {r.balanced_accuracy:.4f} ± {sd} | {t_sd} |")
    print(f"\nthreshold pooled from folds {','.join(map(str, args.ship))}: {ship:.3f}; "
          f"from every fold ({','.join(map(str, folds))}): {every:.3f}")  # fmt: skip
    if args.json:
        record = {"run": str(args.run), "ship": args.ship, "ship_threshold": ship, "every_threshold": every,
                  "summary": summary.reset_index().to_dict(orient="records"),
                  "rows": rows.to_dict(orient="records")}  # fmt: skip
        with atomic_path(args.json) as tmp:
            tmp.write_text(json.dumps(record, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
