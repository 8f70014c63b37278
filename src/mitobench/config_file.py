"""Reading YAML configuration (a user's file or one shipped in the package), and turning a
validation error into one line; errors name the file and the fix."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, ValidationError

from mitobench.errors import ConfigError

STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
"""Every config object: an unknown key is a typo, and NaN or infinity is never a setting."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe loader that refuses a key written twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise ConfigError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} is written twice",
                    "keep one of the two (YAML would silently use the last)",
                )
            seen.add(key)
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping


def _mapping(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except ConfigError as exc:
        raise ConfigError(f"{where}, {exc.message}", exc.fix) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})", "fix the syntax") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of settings", "see configs/ for examples")
    return data


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping from `path`, or a ConfigError naming the file and the problem."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file does not exist", "check the path")
    return _mapping(path.read_text(), str(path))


def packaged_yaml(package: str, *parts: str) -> dict[str, Any]:
    """A YAML mapping shipped in the package: `packaged_yaml("mitobench", "configs", "quick.yaml")`."""
    ref = resources.files(package)
    for part in parts:  # one part per call: Python 3.10's Traversable takes one
        ref = ref.joinpath(part)
    return _mapping(ref.read_text(), "/".join((package, *parts)))


def packaged_names(package: str, folder: str) -> list[str]:
    """Names (without .yaml) of the YAML files in a packaged folder."""
    files = resources.files(package).joinpath(folder).iterdir()
    return sorted(p.name[: -len(".yaml")] for p in files if p.name.endswith(".yaml"))


def line_of(text: str, key: object) -> int | None:
    """The line (1-based) where top-level `key` is written in a YAML text, if it is."""
    match = re.search(rf"^{re.escape(str(key))}\s*:", text, flags=re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else None


def first_error(exc: ValidationError) -> str:
    """`where: what` of a pydantic error, for one-line messages."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg
