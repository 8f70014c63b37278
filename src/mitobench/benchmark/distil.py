"""`mitobench distil`: teachers, then one student trained towards their out-of-fold probabilities.

Resumable stages in one results folder: the teachers are a grid (a packaged config such as
`cpu-best`, one model and mode over the five paper folds) run exactly as `mitobench run` runs it,
into the results store; the student is one run under `<results>/student/`, trained on the training
part of each of its folds (one or more) with `teacher` pointing at the teachers' run and validated
on that fold. With `all_figures`, a final student then trains the same recipe on every training
figure, under `<results>/final/`: nothing is held out, so it runs the recipe's epochs and takes the
threshold that maximises balanced accuracy on the fold students' validation predictions, pooled
(out-of-fold predictions, never a test set; with one fold, that fold's own choice). A second call
skips what is finished. The wall-clock time of each stage and the machine are written to
`<results>/student/distil.json`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mitobench import machine
from mitobench.benchmark.grid import GridConfig
from mitobench.benchmark.jobs import run_dir_for
from mitobench.benchmark.runner import GridResult, run_grid
from mitobench.errors import ConfigError
from mitobench.metrics.binary import best_threshold
from mitobench.paths import atomic_write_text
from mitobench.progress import Progress
from mitobench.runs.rundir import RunDir, run_name, set_key
from mitobench.runs.spec import RunSpec, parse_spec
from mitobench.train.run import RunResult, train_run

STUDENT_DIR = "student"
FINAL_DIR = "final"


@dataclass(frozen=True)
class DistilPlan:
    """The teachers' grid and run folder, and the student's settings and run folder."""

    teachers: GridConfig
    teacher_run: Path
    student: RunSpec
    student_run: Path
    final_run: Path | None = None
    """Where the all-figures student goes (None: no final student)."""


def plan_distil(
    teachers: GridConfig,
    results_dir: Path,
    student_model: str | None = None,
    teacher_weight: float = 0.5,
    folds: tuple[int, ...] = (0,),
    student_train: dict[str, Any] | None = None,
    student_preset: str | None = None,
    all_figures: bool = False,
) -> DistilPlan:
    """Check the grid makes one teacher run, and lay out the student (the teachers' model unless
    `student_model`), trained on each fold's training part with the teachers' recipe (or
    `student_preset`'s: a cheap teacher recipe can feed a student at a costlier one); with
    `all_figures`, then a final student on every training figure. The student is validated on
    each of `folds`; more folds give the final student's threshold more out-of-fold predictions."""
    specs = teachers.run_specs()
    if len(specs) != 1:
        raise ConfigError(
            f"{teachers.name}: distillation needs one teacher run (one model, one mode); it has {len(specs)}",
            "use a config with one entry under runs: (e.g. cpu-best)",
        )
    teacher = specs[0]
    student = parse_spec(
        {
            "model": student_model or teacher.model,
            "mode": "e2e",
            "preset": student_preset or teacher.preset,
            "train_data": teacher.train_data,
            "folds": sorted(set(folds)),
            "eval_sets": teacher.eval_sets,
            "train": {
                **teacher.train,
                **(student_train or {}),
                "teacher": str(run_dir_for(results_dir, teacher).resolve()),
                "teacher_weight": teacher_weight,
            },
        }
    )
    name = run_name(student.model, student.mode, student.preset, student.train_data)
    final_run = results_dir / FINAL_DIR / name if all_figures else None
    return DistilPlan(
        teachers, run_dir_for(results_dir, teacher), student, results_dir / STUDENT_DIR / name, final_run
    )


def distilled_runs(results_dir: Path) -> tuple[Path, Path | None]:
    """(the fold student's run, the final student's or None) of a `mitobench distil` results
    folder: what the shipping and model-card scripts read."""
    students = sorted(p.parent for p in (results_dir / STUDENT_DIR).glob("*/run.json"))
    if len(students) != 1:
        raise ConfigError(
            f"{results_dir / STUDENT_DIR}: expected one student run, found {len(students)}",
            "pass the results folder of one `mitobench distil`",
        )
    finals = sorted(p.parent for p in (results_dir / FINAL_DIR).glob("*/run.json"))
    return students[0], finals[0] if finals else None


def pooled_validation(
    run: Path, folds: list[int], columns: tuple[str, ...] = ("label", "prob")
) -> pd.DataFrame:
    """The validation predictions (`columns` of them) of `folds`, pooled: each training figure
    once, from the fold model that held it out."""
    frames = []
    for k in folds:
        files = [f for f in RunDir(run).fold(k).prediction_files() if set_key(f).endswith("/val")]
        if len(files) != 1:
            raise ConfigError(
                f"{run}: fold {k} holds {len(files)} validation prediction files, not one",
                "rerun the same command to finish the student's folds",
            )
        frames.append(pd.read_csv(files[0], usecols=list(columns)))
    return pd.concat(frames, ignore_index=True)


def pooled_threshold(run: Path, folds: list[int]) -> float:
    """The threshold that maximises balanced accuracy on the validation predictions of `folds`
    pooled: one threshold for a model trained on all of them. With one fold it is the threshold
    that fold chose."""
    pooled = pooled_validation(run, folds)
    return best_threshold(pooled["label"].to_numpy(), pooled["prob"].to_numpy())


def final_spec(student: RunSpec, threshold: float) -> RunSpec:
    """The student's recipe on every training figure, at the threshold its folds chose."""
    values = student.model_dump()
    values["train"] = {
        **values["train"],
        "threshold": "fixed",
        "fixed_threshold": threshold,
        "early_stopping_patience": None,
    }
    return parse_spec({**values, "folds": [0], "all_figures": True})


def distil(
    plan: DistilPlan,
    results_dir: Path,
    data_root: Path,
    progress: Progress | None = None,
    job_overrides: dict[str, Any] | None = None,
) -> tuple[GridResult, RunResult, RunResult | None]:
    """Run (or resume) the teachers, the student, then the final student where planned (None
    otherwise, or while the student is unfinished); refuse to start the student on teachers that
    did not all finish."""
    started = time.perf_counter()
    grid = run_grid(plan.teachers, results_dir, data_root, progress=progress, job_overrides=job_overrides)
    teachers_seconds = time.perf_counter() - started
    unfinished = RunDir(plan.teacher_run).unfinished_folds() if plan.teacher_run.is_dir() else []
    if grid.failed or grid.busy or unfinished:
        left = sorted(grid.failed) + grid.busy + [f"fold {k}" for k in unfinished]
        raise ConfigError(
            f"the teachers did not all finish ({', '.join(left)}): the student needs every fold's "
            "held-out predictions",
            f"rerun the same command; failures are listed in {results_dir / 'results.sqlite'}",
        )
    started = time.perf_counter()
    student = train_run(plan.student, plan.student_run, data_root, progress, **(job_overrides or {}))
    record: dict[str, Any] = {
        "teachers": plan.teachers.name,
        "teacher_run": str(plan.teacher_run),
        "student_run": str(plan.student_run),
        "teachers_seconds_this_call": round(teachers_seconds, 1),
        "student_seconds_this_call": round(time.perf_counter() - started, 1),
        "teachers_trained_this_call": len(grid.done),
        "student_folds_trained_this_call": student.trained_folds,
        "machine": machine.label(),
    }
    folds = plan.student.folds
    final = None
    if plan.final_run is not None and all(RunDir(plan.student_run).fold(k).is_done() for k in folds):
        threshold = pooled_threshold(plan.student_run, folds)
        started = time.perf_counter()
        final = train_run(
            final_spec(plan.student, threshold), plan.final_run, data_root, progress, **(job_overrides or {})
        )
        record |= {
            "final_run": str(plan.final_run),
            "final_threshold": threshold,
            "final_threshold_from": "best balanced accuracy on the students' validation predictions, "
            f"folds {', '.join(map(str, folds))} pooled",
            "final_seconds_this_call": round(time.perf_counter() - started, 1),
            "final_trained_this_call": bool(final.trained_folds),
        }
    log = plan.student_run.parent / "distil.json"
    calls = json.loads(log.read_text())["calls"] if log.is_file() else []
    atomic_write_text(log, json.dumps({"calls": [*calls, record]}, indent=1))
    return grid, student, final
