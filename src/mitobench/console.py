"""Rich-based progress for the CLI (the library only sees the `Progress` protocol)."""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

err_console = Console(stderr=True, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LineProgress:
    """Progress for logs (stderr is no terminal): a line when a task starts, at least every
    `every` seconds while it runs (done/total, elapsed, ETA), and when it ends."""

    def __init__(self, console: Console = err_console, every: float = 60.0) -> None:
        self._console = console
        self._every = every
        self._task: tuple[str, int | None] | None = None
        self._done = 0
        self._started = self._last = 0.0

    def _say(self, final: bool = False) -> None:
        assert self._task is not None
        name, total = self._task
        elapsed = time.monotonic() - self._started
        of = f"/{total}" if total else ""
        line = f"{escape(name)}: {self._done}{of}, {_clock(elapsed)} elapsed"
        if final:
            line = f"{escape(name)}: {self._done}{of} done in {_clock(elapsed)}"
        elif total and self._done:
            line += f", eta {_clock(elapsed / self._done * (total - self._done))}"
        self._console.print(line, highlight=False)
        self._last = time.monotonic()

    def start(self, description: str, total: int | None) -> None:
        self.finish()
        self._task, self._done = (description, total), 0
        self._started = time.monotonic()
        self._say()

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._done += n
            if time.monotonic() - self._last >= self._every:
                self._say()

    def finish(self) -> None:
        if self._task is not None:
            self._say(final=True)
            self._task = None

    def close(self) -> None:
        self.finish()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress_for(console: Console = err_console) -> RichProgress | LineProgress:
    """A live bar on a terminal, timed lines in a log."""
    return RichProgress(console) if console.is_terminal else LineProgress(console)


class RichProgress:
    """Shows one bar per task on stderr, with ETA."""

    def __init__(self, console: Console = err_console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )
        self._task: int | None = None

    def start(self, description: str, total: int | None) -> None:
        if self._task is None and not self._progress.live.is_started:
            self._progress.start()
        self.finish()
        self._task = self._progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(TaskID(self._task), n)

    def finish(self) -> None:
        if self._task is not None:
            self._progress.remove_task(TaskID(self._task))
            self._task = None

    def close(self) -> None:
        self.finish()
        self._progress.stop()

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
