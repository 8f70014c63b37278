"""Where mitobench keeps data and caches, and atomic file writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir

DATA_ENV = "MITOBENCH_DATA"
CACHE_ENV = "MITOBENCH_CACHE"


def default_data_root() -> Path:
    """`MITOBENCH_DATA`, else the per-user data directory."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path(user_data_dir("mitobench")) / "data"


def resolve_data_root(data_root: str | Path | None) -> Path:
    """The explicit `--data-root` wins over the environment and the default."""
    return Path(data_root).expanduser() if data_root else default_data_root()


def cache_dir() -> Path:
    """`MITOBENCH_CACHE`, else the per-user cache directory."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path(user_cache_dir("mitobench"))


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only on success.

    Readers therefore see either the old file or the complete new one, never half a file.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write text so that an interrupted write leaves the old file intact."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
