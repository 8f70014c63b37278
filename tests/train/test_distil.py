"""Distillation: a student trains towards a teacher run's out-of-fold probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mitobench.errors import ConfigError
from mitobench.runs.spec import parse_spec
from mitobench.train.run import train_run

FAST = {"input_size": 32, "batch_size": 16, "eval_batch_size": 64, "precision": "fp32", "max_epochs": 1}


def _spec(folds: list[int], **train: object):
    return parse_spec({"model": "resnet10t", "mode": "e2e", "preset": "cpu", "folds": folds, "eval_sets": [],
                       "train": {**FAST, "warmup_epochs": 0, **train}})  # fmt: skip


def test_a_student_trains_towards_the_teachers_held_out_probabilities(
    separable_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mitobench.train.run as run_mod

    teacher = tmp_path / "teacher"
    train_run(_spec([0, 1, 2, 3, 4]), teacher, separable_root, pretrained=False)
    held_out = {}  # read independently: each training figure's probability from the fold holding it out
    for k in range(5):
        frame = pd.read_csv(teacher / f"fold_{k}" / "predictions" / "amibr__val.csv", dtype={"id": str})
        held_out |= {i: (p, y, k) for i, p, y in zip(frame["id"], frame["prob"], frame["label"], strict=True)}
    seen: list[np.ndarray] = []
    real = run_mod.ImageBatches

    def spy(*args, **kwargs):
        batches = real(*args, **kwargs)
        if batches.targets is not None:
            seen.append(batches.targets)
        return batches

    monkeypatch.setattr(run_mod, "ImageBatches", spy)
    student = tmp_path / "student"
    train_run(
        _spec([0], teacher=str(teacher), teacher_weight=0.25), student, separable_root, pretrained=False
    )
    assert len(seen) == 1  # the training batches only: validation and test keep the labels
    expected = sorted(0.25 * p + 0.75 * y for p, y, k in held_out.values() if k != 0)
    np.testing.assert_allclose(sorted(seen[0]), expected, atol=1e-6)
    record = json.loads((student / "run.json").read_text())
    assert record["teacher"]["run"] == str(teacher.resolve()) and len(record["teacher"]["sha256"]) == 64
    assert record["train_config"]["teacher_weight"] == 0.25


def test_a_teacher_must_hold_every_training_figure_out_once(separable_root: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    train_run(_spec([0, 1]), partial, separable_root, pretrained=False)
    with pytest.raises(ConfigError, match=r"no held-out prediction for .* training figures of amibr"):
        train_run(_spec([0], teacher=str(partial)), tmp_path / "s1", separable_root, pretrained=False)
    with pytest.raises(ConfigError, match="not a mitobench run"):
        train_run(_spec([0], teacher=str(tmp_path)), tmp_path / "s2", separable_root, pretrained=False)
    assert not (tmp_path / "s1" / "fold_0" / "best.safetensors").exists()  # refused before training
