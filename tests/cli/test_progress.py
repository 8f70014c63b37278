"""Progress without a terminal: timed lines a log keeps, not a silent live bar."""

from __future__ import annotations

import io

from rich.console import Console

from mitobench.console import LineProgress, RichProgress, progress_for


def test_a_log_gets_a_line_at_start_on_time_and_at_the_end() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    assert isinstance(progress_for(console), LineProgress)
    with LineProgress(console, every=0.0) as progress:
        progress.start("validating [fold 0]", 4)
        progress.advance(2)
        progress.advance(2)
    lines = buf.getvalue().splitlines()
    assert lines[0].startswith("validating [fold 0]: 0/4")  # markup in names survives
    assert "2/4" in lines[1] and "eta" in lines[1]
    assert lines[-1].startswith("validating [fold 0]: 4/4 done in")


def test_a_log_is_not_flooded() -> None:
    buf = io.StringIO()
    progress = LineProgress(Console(file=buf, force_terminal=False), every=3600.0)
    progress.start("epoch 1/4", 1000)
    for _ in range(1000):
        progress.advance()
    progress.finish()
    assert len(buf.getvalue().splitlines()) == 2


def test_a_terminal_gets_the_live_bar() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    assert isinstance(progress_for(console), RichProgress)
