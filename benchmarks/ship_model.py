"""Make a finished `mitobench distil` student the shipped model (a maintainer's step).

Writes src/mitobench/shipped/NAME.{safetensors,onnx,onnx.json,json}: the fp16 bundle, its ONNX
form and the record of how it was made — the recipe command, each stage's time and machine
(`student/distil.json`), the whole command's wall clock as measured (`--wall`), and the data's
fingerprint (sha256 of every AMi-Br file, the training split included).

Usage:
  python benchmarks/ship_model.py results/amibr-lite0 --name amibr-lite0 --data-root ../shared/data \
      --command "mitobench distil ..." --wall 1:23:45
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from mitobench import __version__
from mitobench.benchmark.distil import STUDENT_DIR
from mitobench.data.manifest import dataset_files, sha256_files
from mitobench.inference.shipped import ship_run
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

    students = sorted(p.parent for p in (args.results / STUDENT_DIR).glob("*/run.json"))
    if len(students) != 1:
        raise SystemExit(f"{args.results / STUDENT_DIR}: expected one student run, found {len(students)}")
    student = students[0]
    record = RunDir(student).read_record()
    calls = json.loads((args.results / STUDENT_DIR / "distil.json").read_text())["calls"]
    files = dataset_files(args.data_root, "amibr")
    made = {
        "recipe": args.command,
        "wall_clock": args.wall,
        "stages": calls,
        "student_run": record["spec"],
        "train_config": record["train_config"],
        "teacher": record.get("teacher"),
        "data": {"dataset": "AMi-Br (training split)", "files": len(files), "sha256": sha256_files(files)},
        "licence": "weights: MIT, as mitobench; trained on AMi-Br (MIT, DeepMicroscopy)",
        "made_on": datetime.date.today().isoformat(),
        "mitobench": __version__,
        "environment": record.get("environment"),
    }
    ship = ship_run(student, args.name, made)
    for path in (ship.bundle, ship.onnx, ship.record_path):
        print(f"{path} ({path.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
