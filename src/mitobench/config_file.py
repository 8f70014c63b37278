"""Reading YAML configuration (a user's file or one shipped in the package), and turning a
validation error into one line; errors name the file and the fix."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mitobench.errors import ConfigError


def _mapping(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
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
    return _mapping(resources.files(package).joinpath(*parts).read_text(), "/".join((package, *parts)))


def packaged_names(package: str, folder: str) -> list[str]:
    """Names (without .yaml) of the YAML files in a packaged folder."""
    files = resources.files(package).joinpath(folder).iterdir()
    return sorted(p.name[: -len(".yaml")] for p in files if p.name.endswith(".yaml"))


def first_error(exc: ValidationError) -> str:
    """`where: what` of a pydantic error, for one-line messages."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"
