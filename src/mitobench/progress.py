"""A minimal progress protocol so the library can report progress without printing."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    """Receives progress from long library calls; the CLI implements it with rich."""

    def start(self, description: str, total: int | None) -> None:
        """Begin a task of `total` units (None when unknown)."""

    def advance(self, n: int = 1) -> None:
        """Mark `n` more units done."""

    def finish(self) -> None:
        """End the current task."""


class NullProgress:
    """Discards progress; the default for library calls."""

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass
