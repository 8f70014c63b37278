"""Rich-based progress for the CLI (the library only sees the `Progress` protocol)."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

err_console = Console(stderr=True, soft_wrap=True)
out_console = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


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
            self._progress.advance(self._task, n)

    def finish(self) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
            self._task = None

    def close(self) -> None:
        self.finish()
        self._progress.stop()

    def __enter__(self) -> RichProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
