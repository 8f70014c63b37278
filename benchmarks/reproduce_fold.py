"""Reproduce folds of the paper with no downloaded weights, and judge them against its figures.

    python benchmarks/reproduce_fold.py --data-root ../shared/data                # EfficientNetV2-M, fold 0
    python benchmarks/reproduce_fold.py --data-root ../shared/data --fold 3
    python benchmarks/reproduce_fold.py --data-root ../shared/data --folds 0,1,2,3,4 --seeds 1,2
    python benchmarks/reproduce_fold.py --data-root ../shared/data --quick        # any machine, < 1 min

EfficientNetV2-M is trained from scratch (as in the paper) under the `paper` preset on the
paper's folds (fold k is the scripts' `fold_{k+1}`), once per seed, evaluated on every test set
present. One fold is the quick check: it is printed beside the paper's same fold. With several
folds or seeds, the verdict compares our mean ± SD (ddof 0, as the paper) per test set with the
published one, with the tolerance printed beside it (`report.published.TOLERANCE`); one unseeded
fold cannot confirm a reproduction (the published EfficientNetV2-M folds span 0.728–0.778 on
AMi-Br). `--quick` keeps the protocol's code path but limits it (one epoch of 16 figures at 64 px)
so it runs end to end on a CPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from mitobench.errors import ConfigError, int_list

QUICK = {"max_epochs": 1, "epoch_size": 16, "input_size": 64, "eval_batch_size": 32}


def _ints(option: str, what: str) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        try:
            return int_list(text, option, what)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--model", default="efficientnetv2_m")
    p.add_argument("--fold", type=int, default=0, help="0-based: the paper's k-th split")
    p.add_argument(
        "--folds", type=_ints("--folds", "fold"), help="several folds, e.g. 0,1,2,3,4 (beats --fold)"
    )
    p.add_argument(
        "--seeds", type=_ints("--seeds", "seed"), help="train each fold once per seed (else the preset's)"
    )
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    p.add_argument("--quick", action="store_true", help="limits for a CPU smoke test")
    p.add_argument(
        "--max-epochs", type=int, help="cap the protocol's 100 epochs (a shortened reproduction, recorded)"
    )
    args = p.parse_args(argv)
    folds = args.folds or [args.fold]
    if any(not 0 <= f <= 4 for f in folds):
        p.error(f"--folds {folds}: the paper has folds 0 to 4")

    from mitobench.console import progress_for
    from mitobench.data.registry import EVAL_SETS
    from mitobench.data.splits import PAPER_FOLDS_SHA256
    from mitobench.errors import MitobenchError
    from mitobench.report.published import TOLERANCE, compare_fold, judge_reproduction
    from mitobench.runs.spec import parse_spec
    from mitobench.train.run import environment, train_run

    train: dict = dict(QUICK) if args.quick else ({"max_epochs": args.max_epochs} if args.max_epochs else {})
    started = time.perf_counter()
    scores: dict[str, list[float]] = {}
    runs = []
    for seed in args.seeds or [None]:
        spec = parse_spec(
            {
                "model": args.model,
                "mode": "e2e",
                "preset": "paper",
                "folds": folds,
                "eval_sets": list(EVAL_SETS),
                "train": train if seed is None else {**train, "seed": seed},
            }
        )
        name = f"{args.model}-paper{'-quick' if args.quick else ''}{'' if seed is None else f'-seed{seed}'}"
        run_dir = args.out / name
        try:
            result = train_run(spec, run_dir, args.data_root, progress_for())
        except MitobenchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for fold in folds:
            done = json.loads((run_dir / f"fold_{fold}" / "done.json").read_text())
            per_set = {
                k: v["per_fold"][str(fold)] for k, v in result.summary["sets"].items() if "/val" not in k
            }
            for dataset, m in per_set.items():
                scores.setdefault(dataset, []).append(m["balanced_accuracy"])
            runs.append(
                {
                    "seed": seed,
                    "fold": fold,
                    "run_dir": str(run_dir),
                    "paper_folds": done["folds_sha256"] == PAPER_FOLDS_SHA256,
                    "epochs_run": done["epochs_run"],
                    "best_epoch": done["best_epoch"],
                    "rows": compare_fold(per_set, args.model, "e2e", fold).to_dict(orient="records"),
                }
            )
    verdict = judge_reproduction(scores, args.model, "e2e")
    record = {
        "model": args.model,
        "folds": folds,
        "seeds": args.seeds,
        "fold": folds[0],
        "quick": args.quick,
        "max_epochs": args.max_epochs,
        "paper_folds": all(r["paper_folds"] for r in runs),
        "epochs_run": runs[0]["epochs_run"],
        "best_epoch": runs[0]["best_epoch"],
        "minutes": round((time.perf_counter() - started) / 60, 2),
        "environment": environment(),
        "rows": runs[0]["rows"],
        "runs": runs,
        "verdict": verdict.to_dict(orient="records"),
        "tolerance": TOLERANCE,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    out_name = name if len(runs) == 1 else f"{args.model}-paper{'-quick' if args.quick else ''}"
    (args.out / out_name).mkdir(parents=True, exist_ok=True)
    (args.out / out_name / "reproduction.json").write_text(json.dumps(record, indent=1, default=str))
    whose = "the paper's" if record["paper_folds"] else "NOT the paper's"
    print(
        f"{args.model}, paper preset, folds {folds} x seeds {args.seeds or ['preset']} ({whose} folds),"
        f" {record['minutes']} min on {record['environment'].get('machine', '?')}"
    )
    if len(runs) == 1:
        rows = runs[0]["rows"]
        print("one fold, beside the paper's same fold (a quick check, not a verdict):")
        print(_markdown(rows) if rows else "(no published fold to compare)")
    print(f"verdict ({TOLERANCE}):")
    print(verdict.to_markdown(index=False, floatfmt=".4f") if not verdict.empty else "(no published figure)")
    return 0


def _markdown(rows: list[dict]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_markdown(index=False, floatfmt=".4f")


if __name__ == "__main__":
    raise SystemExit(main())
