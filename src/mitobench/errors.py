"""Typed errors: the library raises them, the CLI turns them into one line and an exit code."""

from __future__ import annotations


class MitobenchError(Exception):
    """A problem the user can fix; carries the fix so the message names both."""

    exit_code = 2

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.fix}" if self.fix else self.message


class DataError(MitobenchError):
    """Missing, malformed or inconsistent data on disk."""


class ConfigError(MitobenchError):
    """An invalid experiment configuration or command-line value."""


class ModelError(MitobenchError):
    """A model that cannot be built or whose weights cannot be loaded."""


class DownloadError(MitobenchError):
    """A download that failed or arrived broken."""


class StorageError(MitobenchError):
    """A place to write that cannot be written: a full disk, a file where a folder belongs."""


def did_you_mean(name: str, candidates: list[str]) -> str:
    """The start of a fix for a mistyped name: 'did you mean A, B? ' for the up to three
    candidates nearest `name`, else ''."""
    import difflib

    near = difflib.get_close_matches(name, candidates, n=3)
    return f"did you mean {', '.join(near)}? " if near else ""


def int_list(text: str, option: str, what: str = "fold") -> list[int]:
    """`'0,1,2'` -> [0, 1, 2]: the one parse of a comma-separated option (`--folds`, `--seeds`),
    in the CLI and the benchmark scripts alike; a wrong or empty one names `option` and the fix."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a list of {what} numbers", f"write e.g. {option} 0,1,2"
        ) from None
    if not values:
        raise ConfigError(f"{option} {text!r} names no {what}", f"write e.g. {option} 0,1,2")
    return values
