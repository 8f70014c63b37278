"""Make a finished `mitobench distil` student the shipped model (a maintainer's step): the final
student (`final/`, every training figure) where the distil made one, else the fold student.

Writes src/mitobench/shipped/NAME.{safetensors,onnx,onnx.json,json}: the fp16 bundle, its ONNX
form and the record of how it was made — the recipe command, each stage's time and machine
(`student/distil.json`), the whole command's wall clock as measured (`--wall`), and the data's
fingerprint (sha256 of every AMi-Br file, the training split included). Then scores the shipped
files themselves on the run's test sets (ONNX Runtime fp32, PyTorch fp32 and PyTorch at
`precision: auto` on this machine) and adds those figures to the record: the run's own figures
came from fp32 weights at its inference precision, the files hold fp16 weights.

Usage:
  python benchmarks/ship_model.py results/amibr-lite0 --name amibr-lite0 --data-root ../shared/data \
      --command "mitobench distil ..." --wall 1:23:45
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mitobench import __version__
from mitobench.benchmark.distil import STUDENT_DIR, distilled_runs
from mitobench.data.cache import ImageCache
from mitobench.data.dataset import Dataset
from mitobench.data.manifest import dataset_files, sha256_files
from mitobench.data.registry import load_present
from mitobench.errors import ConfigError
from mitobench.inference.bundle import from_bundle, with_teacher_named
from mitobench.inference.onnx import from_onnx
from mitobench.inference.shipped import ShippedModel, ship_run
from mitobench.machine import label as machine_label
from mitobench.metrics.binary import compute
from mitobench.paths import atomic_write_text
from mitobench.runs.rundir import RunDir


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("results", type=Path, help="The results folder of `mitobench distil`.")
    parser.add_argument("--name", default="amibr-lite0")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--command", required=True, help="The distil command that made it, as run.")
    parser.add_argument("--wall", required=True, help="Its wall clock as measured (/usr/bin/time).")
    args = parser.parse_args()

    try:
        fold_run, final_run = distilled_runs(args.results)
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    student = final_run or fold_run
    record = RunDir(student).read_record()
    fold_student = RunDir(fold_run)
    folds = fold_student.finished_folds()
    dones = [fold_student.fold(k).read_done() for k in folds]
    threshold = record["train_config"]["fixed_threshold"] if final_run is not None else dones[0]["threshold"]
    teacher = record.get("teacher")
    named = {"run": record["spec"], "train_config": record["train_config"]}
    if teacher:  # the maintainer's absolute path says nothing to a user: as the recipe names it
        teacher = {**teacher, "run": os.path.relpath(teacher["run"])}
        named = with_teacher_named(named, teacher["run"])
    calls = json.loads((args.results / STUDENT_DIR / "distil.json").read_text())["calls"]
    files = dataset_files(args.data_root, "amibr")
    made = {
        "recipe": args.command,
        "wall_clock": args.wall,
        "stages": calls,
        "student_run": named["run"],
        "train_config": named["train_config"],
        "teacher": teacher,
        "validation": {
            "folds": folds,
            "auroc": [d["best_val_score"] for d in dones],
            "threshold": threshold,
            "what": "the same recipe trained on the other folds' figures and scored on each fold"
            + (
                "; the model trained on every figure uses the threshold best on their predictions pooled"
                if final_run is not None
                else ""
            ),
        },
        "data": {"dataset": "AMi-Br (training split)", "files": len(files), "sha256": sha256_files(files)},
        "licence": "weights: MIT, as mitobench; trained on AMi-Br (MIT, DeepMicroscopy)",
        "made_on": datetime.date.today().isoformat(),
        "mitobench": __version__,
        "environment": record.get("environment"),
    }
    ship = ship_run(student, args.name, made)
    sets, _absent = load_present(record["spec"]["eval_sets"], args.data_root)
    scored = {"machine": machine_label(), "sets": {d.key: score_files(ship, d) for d in sets}}
    record_text = json.dumps({**ship.record(), "shipped_files_scored": scored}, indent=1)
    atomic_write_text(ship.record_path, record_text)
    for path in (ship.bundle, ship.onnx, ship.record_path):
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")


def score_files(ship: ShippedModel, data: Dataset) -> dict[str, Any]:
    """One test set scored by each engine on the shipped files, at the shipped threshold."""
    images = ImageCache().load(data)
    onnx = from_onnx(ship.onnx)
    auto = from_bundle(ship.bundle)
    fp32 = replace(auto, cfg=auto.cfg.model_copy(update={"precision": "fp32", "test_precision": "fp32"}))
    probs = {
        "onnx runtime fp32": onnx.ensemble_probs(images),
        "pytorch fp32": fp32.ensemble_probs(images),
        "pytorch precision auto": auto.ensemble_probs(images),
    }
    out: dict[str, Any] = {"n": len(data), "threshold": onnx.threshold}
    for engine, p in probs.items():
        scores = compute(data.labels, p, onnx.threshold)
        out[engine] = {m: float(scores[m]) for m in ("balanced_accuracy", "auroc", "ece")}
        out[engine]["max_abs_diff_from_onnx"] = float(np.abs(p - probs["onnx runtime fp32"]).max())
    return out


if __name__ == "__main__":
    main()
