"""Per-sample predictions of a run on disk, and the metrics computed from them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mitobench.evaluate.metrics import compute, summarise
from mitobench.paths import atomic_path, atomic_write_text


def set_file(key: str) -> str:
    """`amibr/test` -> `amibr__test.csv` (one file per evaluated dataset)."""
    return key.replace("/", "__").replace("\\", "__") + ".csv"


def write_predictions(
    path: Path, ids: list[str], labels: np.ndarray, probs: np.ndarray, tta: np.ndarray | None = None
) -> None:
    frame = pd.DataFrame({"id": ids, "label": labels.astype(int), "prob": probs})
    if tta is not None:
        frame["prob_tta"] = tta
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6f")


def fold_dirs(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.glob("fold_*") if (p / "done.json").is_file())


def summarise_run(run_dir: Path) -> dict[str, object]:
    """Per fold, mean ± std over folds, the fold ensemble and TTA, for every evaluated set."""
    folds = fold_dirs(run_dir)
    done = {int(p.name.split("_")[1]): json.loads((p / "done.json").read_text()) for p in folds}
    sets: dict[str, dict[str, object]] = {}
    keys = sorted({f.name for p in folds for f in (p / "predictions").glob("*.csv")})
    for fname in keys:
        frames = {
            k: pd.read_csv(run_dir / f"fold_{k}" / "predictions" / fname)
            for k in done
            if (run_dir / f"fold_{k}" / "predictions" / fname).is_file()
        }
        if not frames:
            continue
        per_fold = {
            k: compute(f["label"].to_numpy(), f["prob"].to_numpy(), done[k]["threshold"])
            for k, f in frames.items()
        }
        first = next(iter(frames.values()))
        entry: dict[str, object] = {
            "n": len(first),
            "per_fold": {str(k): m for k, m in per_fold.items()},
            "summary": summarise(list(per_fold.values())),
        }
        if len(frames) > 1 and all(f["id"].equals(first["id"]) for f in frames.values()):
            mean_prob = np.mean([f["prob"].to_numpy() for f in frames.values()], axis=0)
            threshold = float(np.mean([done[k]["threshold"] for k in frames]))
            entry["ensemble"] = compute(first["label"].to_numpy(), mean_prob, threshold)
        if all("prob_tta" in f for f in frames.values()):
            tta = {
                k: compute(f["label"].to_numpy(), f["prob_tta"].to_numpy(), done[k]["threshold"])
                for k, f in frames.items()
            }
            entry["tta"] = {
                "per_fold": {str(k): m for k, m in tta.items()},
                "summary": summarise(list(tta.values())),
            }
        sets[fname[: -len(".csv")].replace("__", "/")] = entry
    return {"folds": {str(k): d for k, d in done.items()}, "sets": sets}


def write_summary(run_dir: Path) -> dict[str, object]:
    summary = summarise_run(run_dir)
    atomic_write_text(run_dir / "metrics.json", json.dumps(summary, indent=1))
    return summary
