"""Reproduce one fold of the paper on a GPU, with no downloaded weights, and compare it with the
paper's figure for that fold.

    python benchmarks/reproduce_fold.py --data-root ../shared/data                # EfficientNetV2-M, fold 0
    python benchmarks/reproduce_fold.py --data-root ../shared/data --fold 3
    python benchmarks/reproduce_fold.py --data-root ../shared/data --quick        # any machine, < 1 min

EfficientNetV2-M is trained from scratch (as in the paper) under the `paper` preset on the
paper's fold k (the scripts' `fold_{k+1}`), evaluated on every test set present, and printed
beside `published_per_fold.csv`. `--quick` keeps the protocol's code path but limits it (one epoch
of 16 figures at 64 px) so it runs end to end on a CPU; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

QUICK = {"max_epochs": 1, "epoch_size": 16, "input_size": 64, "eval_batch_size": 32}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", type=Path, required=True)
    p.add_argument("--model", default="efficientnetv2_m")
    p.add_argument("--fold", type=int, default=0, help="0-based: the paper's k-th split")
    p.add_argument("--out", type=Path, default=Path("runs/reproduce"))
    p.add_argument("--quick", action="store_true", help="limits for a CPU smoke test")
    p.add_argument(
        "--max-epochs", type=int, help="cap the protocol's 100 epochs (a shortened reproduction, recorded)"
    )
    args = p.parse_args(argv)

    from mitobench.console import progress_for
    from mitobench.data.registry import EVAL_SETS
    from mitobench.data.splits import PAPER_FOLDS_SHA256
    from mitobench.errors import MitobenchError
    from mitobench.report.published import compare_fold
    from mitobench.train.run import environment, train_run
    from mitobench.train.spec import parse_spec

    spec = parse_spec(
        {
            "model": args.model,
            "mode": "e2e",
            "preset": "paper",
            "folds": [args.fold],
            "eval_sets": list(EVAL_SETS),
            "train": QUICK if args.quick else ({"max_epochs": args.max_epochs} if args.max_epochs else {}),
        }
    )
    run_dir = args.out / f"{args.model}-paper{'-quick' if args.quick else ''}"
    started = time.perf_counter()
    try:
        result = train_run(spec, run_dir, args.data_root, progress_for())
    except MitobenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = json.loads((run_dir / f"fold_{args.fold}" / "done.json").read_text())
    per_set = {k: v["per_fold"][str(args.fold)] for k, v in result.summary["sets"].items() if "/val" not in k}
    table = compare_fold(per_set, args.model, "e2e", args.fold)
    record = {
        "model": args.model,
        "fold": args.fold,
        "quick": args.quick,
        "max_epochs": args.max_epochs,
        "paper_folds": done["folds_sha256"] == PAPER_FOLDS_SHA256,
        "epochs_run": done["epochs_run"],
        "best_epoch": done["best_epoch"],
        "minutes": round((time.perf_counter() - started) / 60, 2),
        "environment": environment(),
        "rows": table.to_dict(orient="records"),
    }
    (run_dir / "reproduction.json").write_text(json.dumps(record, indent=1))
    whose = "the paper's" if record["paper_folds"] else "NOT the paper's"
    print(
        f"{args.model}, paper preset, fold {args.fold} ({whose} folds), {record['epochs_run']} epoch(s)"
        f" (best {record['best_epoch']}), {record['minutes']} min"
    )
    print(
        table.to_markdown(index=False, floatfmt=".4f")
        if not table.empty
        else "(no published fold to compare)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
