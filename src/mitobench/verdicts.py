"""A choice measured once on this machine and kept in the cache: which inference engine
(`inference/engine_race.py`) and which training precision (`train/precision_race.py`) is faster.

Timing noise must not change a machine's results from call to call, so a race runs once per key
(processor, library versions, what is raced) and its verdict is reused; a cache that cannot be
written (read-only on a cluster) does not stop the work, the race then runs every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mitobench.errors import StorageError
from mitobench.paths import atomic_write_text, cache_dir


def verdict_file(kind: str, name: str, key: list[Any]) -> Path:
    """`cache_dir()/kind/name-<16 hex of key>.json`: one file per key (anything JSON can hold)."""
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]
    return cache_dir() / kind / f"{name}-{digest}.json"


def kept(
    path: Callable[[], Path], valid: Callable[[Any], bool], race: Callable[[], dict[str, Any]]
) -> dict[str, Any]:
    """The verdict kept at `path()` where it reads back and is `valid`; else `race()`'s, kept there
    (an unreadable or invalid one is replaced). A cache that cannot be made or written is tolerated."""
    try:
        where: Path | None = path()
    except StorageError:
        where = None
    if where is not None:
        try:
            verdict = json.loads(where.read_text())
            if valid(verdict):
                return verdict
        except (OSError, ValueError, KeyError, TypeError):
            pass
    verdict = race()
    if where is not None:
        with contextlib.suppress(StorageError):
            atomic_write_text(where, json.dumps(verdict, indent=1))
    return verdict
