"""`mitobench distil`: the teachers' grid, then one student towards their held-out predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mitobench.benchmark.distil import distil, distilled_runs, plan_distil, pooled_threshold
from mitobench.benchmark.grid import GridConfig
from mitobench.benchmark.store import ResultsStore
from mitobench.errors import ConfigError
from tests.conftest import tiny_grid


def _one_run_grid() -> GridConfig:
    """Teachers for a test: ResNet-10t end to end on the five folds, scored on AMi-Br test."""
    return tiny_grid(folds=[0, 1, 2, 3, 4], runs=[{"model": "resnet10t", "modes": ["e2e"]}],
                     eval_sets=["amibr/test"])  # fmt: skip


def test_distil_trains_the_teachers_then_the_student_and_resumes(
    separable_root: Path, tmp_path: Path
) -> None:
    grid = _one_run_grid()
    out = tmp_path / "distil"
    plan = plan_distil(grid, out, teacher_weight=0.5, folds=(1,))
    teachers, student, final = distil(plan, out, separable_root, job_overrides={"pretrained": False})
    assert final is None and plan.final_run is None
    assert distilled_runs(out) == (plan.student_run, None)
    assert len(teachers.done) == 5 and student.trained_folds == [1]
    jobs = ResultsStore(out).jobs()
    assert sorted(jobs.loc[jobs["status"] == "done", "fold"]) == [0, 1, 2, 3, 4]  # the teachers, in the store
    record = json.loads((plan.student_run / "run.json").read_text())
    assert record["teacher"]["run"] == str(plan.teacher_run.resolve())
    assert record["train_config"]["teacher_weight"] == 0.5 and record["spec"]["folds"] == [1]
    assert (
        pd.read_csv(plan.student_run / "fold_1" / "predictions" / "amibr__test.csv")["prob"]
        .between(0, 1)
        .all()
    )
    again = distil(plan, out, separable_root, job_overrides={"pretrained": False})
    assert again[0].done == [] and len(again[0].skipped) == 5 and again[1].trained_folds == []
    calls = json.loads((plan.student_run.parent / "distil.json").read_text())["calls"]
    assert [c["teachers_trained_this_call"] for c in calls] == [5, 0]
    assert [c["student_folds_trained_this_call"] for c in calls] == [[1], []]
    assert all(c["machine"] and c["teachers_seconds_this_call"] >= 0 for c in calls)
    # one fold: the final student's threshold would be the one that fold chose
    done = json.loads((plan.student_run / "fold_1" / "done.json").read_text())
    assert pooled_threshold(plan.student_run, [1]) == pytest.approx(done["threshold"], abs=1e-6)
    with pytest.raises(ConfigError, match="fold 2 holds 0 validation prediction files"):
        pooled_threshold(plan.student_run, [1, 2])


def test_a_results_folder_without_one_student_is_one_message(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="expected one student run, found 0"):
        distilled_runs(tmp_path)


def test_distil_needs_one_teacher_run(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="needs one teacher run"):
        plan_distil(tiny_grid(), tmp_path)  # e2e and probe: two runs


def test_distil_refuses_the_student_on_unfinished_teachers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mitobench.benchmark.distil as distil_mod
    from mitobench.benchmark.runner import GridResult

    grid = tiny_grid(runs=[{"model": "resnet10t", "modes": ["e2e"]}])
    plan = plan_distil(grid, tmp_path / "out")
    monkeypatch.setattr(
        distil_mod, "run_grid", lambda *a, **k: GridResult(failed={"resnet10t-e2e fold 1": "boom"})
    )
    with pytest.raises(ConfigError, match=r"did not all finish \(resnet10t-e2e fold 1\)"):
        distil(plan, tmp_path / "out", tmp_path)
    assert not plan.student_run.exists()


def _pooled_best_threshold(files: list[Path]) -> float:
    """Brute force with scikit-learn over every predicted probability and 0.5: the best balanced
    accuracy, ties going to the threshold nearest 0.5 (the rule `best_threshold` documents)."""
    from sklearn.metrics import balanced_accuracy_score

    pooled = pd.concat([pd.read_csv(f) for f in files])
    labels, probs = pooled["label"], pooled["prob"]
    scores = {t: balanced_accuracy_score(labels, probs >= t) for t in [*probs, 0.5]}
    best = max(scores.values())
    return float(min((t for t, v in scores.items() if v >= best - 1e-12), key=lambda t: abs(t - 0.5)))


def test_distil_all_figures_trains_a_final_student_at_the_fold_students_pooled_threshold(
    separable_root: Path, tmp_path: Path
) -> None:
    grid = _one_run_grid()
    out = tmp_path / "distil"
    plan = plan_distil(grid, out, teacher_weight=0.5, folds=(2, 3), all_figures=True)
    assert plan.final_run is not None and plan.student.folds == [2, 3]
    _, student, final = distil(plan, out, separable_root, job_overrides={"pretrained": False})
    assert student.trained_folds == [2, 3] and final is not None and final.trained_folds == [0]
    assert distilled_runs(out) == (plan.student_run, plan.final_run)
    fold_done = json.loads((plan.student_run / "fold_2" / "done.json").read_text())
    final_done = json.loads((plan.final_run / "fold_0" / "done.json").read_text())
    # every training figure, nothing held out; the threshold is the best on folds 2 and 3 pooled
    assert final_done["val_figures"] == 0 and fold_done["val_figures"] > 0
    assert final_done["train_figures"] == fold_done["train_figures"] + fold_done["val_figures"]
    pooled = _pooled_best_threshold(
        [plan.student_run / f"fold_{k}" / "predictions" / "amibr__val.csv" for k in (2, 3)]
    )
    assert final_done["threshold"] == pytest.approx(pooled, abs=1e-6)
    assert final_done["best_val_score"] is None and final_done["best_epoch"] == final_done["epochs_run"]
    record = json.loads((plan.final_run / "run.json").read_text())
    assert record["spec"]["all_figures"] is True
    assert record["train_config"]["threshold"] == "fixed" and record["teacher"]["run"] == str(
        plan.teacher_run.resolve()
    )
    predictions = sorted(p.name for p in (plan.final_run / "fold_0" / "predictions").iterdir())
    assert predictions == ["amibr__test.csv"]  # no validation file: it held nothing out
    # exported, it predicts as the run did, at that threshold
    from mitobench.data.cache import ImageCache
    from mitobench.data.registry import load
    from mitobench.inference.bundle import export_run, from_bundle

    export_run(plan.final_run, tmp_path / "final.safetensors")
    bundle = from_bundle(tmp_path / "final.safetensors")
    assert bundle.threshold == pytest.approx(pooled, abs=1e-6)
    test = load("amibr/test", separable_root)
    run_probs = pd.read_csv(plan.final_run / "fold_0" / "predictions" / "amibr__test.csv", dtype={"id": str})
    probs = bundle.ensemble_probs(ImageCache().load(test))
    expected = run_probs.set_index("id").loc[[str(i) for i in test.ids], "prob"].to_numpy()
    assert abs(probs - expected).max() < 1e-3
    # exported with the teacher named otherwise (as the shipping does), the maker's path is gone
    from safetensors import safe_open

    maker_path = str(plan.teacher_run.resolve())
    named = {"run": "results/x/runs/teachers", "sha256": record["teacher"]["sha256"]}
    export_run(plan.final_run, tmp_path / "named.safetensors", teacher=named)
    metas = {}
    for name in ("final", "named"):
        with safe_open(str(tmp_path / f"{name}.safetensors"), framework="pt") as fh:
            metas[name] = fh.metadata()["mitobench"]
    assert json.loads(metas["final"])["train_config"]["teacher"] == maker_path  # as the run records it
    assert maker_path not in metas["named"]
    meta = json.loads(metas["named"])
    assert meta["teacher"] == named
    assert meta["run"]["train"]["teacher"] == meta["train_config"]["teacher"] == named["run"]
    assert from_bundle(tmp_path / "named.safetensors").ensemble_probs(ImageCache().load(test)) == (
        pytest.approx(probs, abs=1e-6)
    )
    again = distil(plan, out, separable_root, job_overrides={"pretrained": False})
    assert again[2] is not None and again[2].trained_folds == []
    calls = json.loads((plan.student_run.parent / "distil.json").read_text())["calls"]
    assert [c["final_trained_this_call"] for c in calls] == [True, False]
    assert calls[0]["final_threshold"] == pytest.approx(pooled, abs=1e-6)
    assert calls[0]["final_threshold_from"].endswith("folds 2, 3 pooled")
