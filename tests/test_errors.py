"""The shared parse of comma-separated options: one message naming the option and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mitobench.errors import ConfigError, int_list

REPO = Path(__file__).resolve().parents[1]


def test_int_list_reads_commas_and_skips_empty_items() -> None:
    assert int_list("0, 2,4,", "--folds") == [0, 2, 4]
    assert int_list("3,1", "--seeds", "seed") == [3, 1]  # the order given: seeds run in it


@pytest.mark.parametrize(
    ("text", "says"),
    [("a,b", "--seeds 'a,b' is not a list of seed numbers"), (",", "--seeds ',' names no seed")],
)
def test_a_wrong_list_names_the_option_and_the_fix(text: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        int_list(text, "--seeds", "seed")
    assert err.value.message == says and err.value.fix == "write e.g. --seeds 0,1,2"


@pytest.mark.parametrize(
    ("script", "args", "says"),
    [
        (
            "reproduce_fold.py",
            ["--data-root", ".", "--seeds", "x"],
            "--seeds 'x' is not a list of seed numbers",
        ),
        ("threshold_folds.py", [".", "--ship", ","], "--ship ',' names no fold"),
    ],
)
def test_the_benchmark_scripts_give_the_same_message_as_a_usage_error(script, args, says) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and says in done.stderr and "Traceback" not in done.stderr
