"""`mitobench train` refuses bad settings with one message and a fix, before any work starts."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ([], "no model given"),
        (
            ["--model", "tf_efficientnet_lite0", "--preset", "fastest"],
            "'fastest' is not one of",
        ),
        (["--model", "tf_efficientnet_lite0", "--folds", "0,7"], "fold 7 does not exist"),
        (["--model", "tf_efficientnet_lite0", "--folds", "a,b"], "is not a list of fold numbers"),
        (["--model", "tf_efficientnet_lite0", "--folds", ","], "names no fold"),
        (["--model", "tf_efficientnet_lite0", "--set", "lr"], "is not KEY=VALUE"),
        (["--model", "tf_efficientnet_lite0", "--set", "lr=-1"], "lr: Input should be greater than 0"),
        (["--model", "tf_efficientnet_lite0", "--set", "no_such_knob=1"], "no_such_knob"),
        (["--model", "tf_efficientnet_lite0", "--mode", "finetune"], "mode"),
        (["--config", "missing.yaml"], "config file does not exist"),
        (["--model", "tf_efficientnet_lite0", "--set", "augment=[{op: hflip}"], "is not valid YAML"),
    ],
)
def test_bad_settings(cli, tmp_path: Path, args: list[str], needle: str) -> None:
    code, _, err = cli("train", "--out", tmp_path / "run", "--data-root", tmp_path, *args)
    assert code == 2, err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "run" / "fold_0").exists()


def test_an_output_folder_that_cannot_be_made_is_refused_before_any_work(cli, tmp_path: Path) -> None:
    """--out under a file (as on a read-only or wrong mount): one message naming it, exit 2."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, _, err = cli(
        "train", "--model", "tf_efficientnet_lite0", "--out", blocker / "run", "--data-root", tmp_path
    )
    assert code == 2 and "cannot be made" in err and str(blocker / "run") in err.replace("\n", "")
    assert "Traceback" not in err


def test_user_text_in_square_brackets_survives_every_message(cli, tmp_path: Path) -> None:
    """Rich would eat `[b]` as markup: file names and values are escaped before printing."""
    missing = tmp_path / "[b]slide.tif"
    (tmp_path / "m.safetensors").write_bytes(b"")
    code, _, err = cli("slide", missing, "--detections", tmp_path / "[x_mm]d.csv", "--model",
                       tmp_path / "m.safetensors", "--out", tmp_path / "o")  # fmt: skip
    assert code == 2 and "[b]slide.tif" in err.replace("\n", ""), err
    code, _, err = cli("train", "--model", "tf_efficientnet_lite0", "--set", "augment=[{op: [b]hflip}",
                       "--out", tmp_path / "run", "--data-root", tmp_path)  # fmt: skip
    assert code == 2 and "[{op: [b]hflip}" in err.replace("\n", ""), err


@pytest.mark.parametrize("command", ["report", "raters"])
def test_a_negative_bootstrap_count_is_refused(cli, tmp_path: Path, command: str) -> None:
    extra = [tmp_path] if command == "report" else ["--results", tmp_path]
    code, _, err = cli(command, *extra, "--bootstrap", "-5")
    assert code == 2 and "--bootstrap" in err and "Traceback" not in err, err


@pytest.mark.parametrize(
    ("folds", "needle"), [("0,7", "fold 7 does not exist"), ("a", "is not a list of fold numbers")]
)
def test_distil_refuses_bad_student_folds(cli, tmp_path: Path, folds: str, needle: str) -> None:
    code, _, err = cli("distil", "--teachers", "cpu-teachers", "--folds", folds,
                       "--results", tmp_path / "out", "--data-root", tmp_path)  # fmt: skip
    assert code == 2 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "runs").exists()
