"""Where mitobench keeps data and caches, and atomic file writes."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir

from mitobench.errors import StorageError

DATA_ENV = "MITOBENCH_DATA"
CACHE_ENV = "MITOBENCH_CACHE"


def default_data_root() -> Path:
    """`MITOBENCH_DATA`, else the per-user data directory."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else Path(user_data_dir("mitobench")) / "data"


def resolve_data_root(data_root: str | Path | None) -> Path:
    """The explicit `--data-root` wins over the environment and the default."""
    return Path(data_root).expanduser() if data_root else default_data_root()


def _first_existing(path: Path) -> Path:
    """`path`, or the nearest of its parents that exists: where making it would start."""
    existing = path.absolute()
    while not os.path.exists(existing) and existing != existing.parent:  # never raises on long names
        existing = existing.parent
    return existing


def cache_dir() -> Path:
    """`MITOBENCH_CACHE`, else the per-user cache directory."""
    env = os.environ.get(CACHE_ENV)
    path = Path(env).expanduser() if env else Path(user_cache_dir("mitobench"))
    where = f"${CACHE_ENV} ({path})" if env else str(path)
    if path.exists() and not path.is_dir():
        raise StorageError(
            f"the cache folder {where} is a file, not a folder", f"set {CACHE_ENV} to a folder"
        )
    existing = _first_existing(path)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(
            f"the cache folder {where} cannot be made or written ({existing} is not a writable folder)",
            f"set {CACHE_ENV} to a writable folder",
        )
    return path


TMP_NAME_EXTRA = 16
"""What atomic_path's temporary name may add to a target's path (`.`, `.`, 8 random, `.tmp`);
its name is cut so that it stays within any file system's name limit."""


def require_short_enough(path: Path, what: str, fix: str, extra: int = 0) -> None:
    """Refuse, before any work, a path the file system cannot hold: a name longer than the
    folder allows (usually 255 bytes) or a path longer, with `extra` bytes still to be added,
    than the system's limit; otherwise it would fail only when the result is written."""
    existing = _first_existing(path)
    folder = existing if existing.is_dir() else existing.parent
    name_max = _pathconf(folder, "PC_NAME_MAX", 255)
    path_max = _pathconf(folder, "PC_PATH_MAX", 4096)
    full = path.absolute()
    for part in full.parts:
        size = len(os.fsencode(part))
        if size > name_max:
            raise StorageError(
                f"{what} {path}: a name of {size} bytes ({part[:30]}…), more than the {name_max}"
                " this file system allows",
                fix,
            )
    if len(os.fsencode(str(full))) + extra >= path_max:
        raise StorageError(
            f"{what} {path} is {len(os.fsencode(str(full)))} bytes long, more than the {path_max}"
            " this system allows",
            fix,
        )


def _pathconf(folder: Path, name: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, name))
    except (OSError, ValueError, AttributeError):  # not every platform or file system says
        return default


def require_folder(path: Path, what: str, fix: str) -> None:
    """Refuse, before any work, a path where a folder is wanted that is a file, or that cannot be
    made or written (a read-only file system, no permission, a name too long)."""
    require_short_enough(path, what, fix)
    if path.exists() and not path.is_dir():
        raise StorageError(f"{what} {path} is a file, not a folder", fix)
    existing = _first_existing(path)  # nothing is created here: a refused command writes nothing
    if not existing.is_dir():
        raise StorageError(f"{what} {path} cannot be made: {existing} is a file", fix)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise StorageError(f"{what} {path} cannot be made: {existing} is not writable", fix)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only on success.

    Readers therefore see either the old file or the complete new one, never half a file.
    """
    target = Path(target)
    if target.is_dir():
        raise StorageError(f"{target} is a folder; a file was to be written there", "pass a file path")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # the prefix is cut so a name near the file system's limit still has room for the suffix
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:100]}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _storage_error(target, exc) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())  # as a plain open() would: mkstemp makes it 0600
        os.replace(tmp_path, target)
    except OSError as exc:
        raise _storage_error(target, exc) from None
    finally:
        tmp_path.unlink(missing_ok=True)


def _storage_error(target: Path, exc: OSError) -> StorageError:
    if exc.errno in NO_SPACE:
        return StorageError(
            f"no space left on the device writing {target} (the previous file, if any, is intact)",
            "free some space (or write somewhere else) and run the command again",
        )
    if exc.errno == errno.ENAMETOOLONG:
        return StorageError(
            f"cannot write {target}: the name is too long", "choose a shorter file or folder name"
        )
    return StorageError(f"cannot write {target} ({exc.strerror or exc})", "check the folder's permissions")


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write text so that an interrupted write leaves the old file intact."""
    with atomic_path(target) as tmp:
        tmp.write_text(text)
