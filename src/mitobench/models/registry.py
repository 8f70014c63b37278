"""The model registry: a name maps to exactly one spec; duplicates are refused loudly."""

from __future__ import annotations

from mitobench.errors import ModelError
from mitobench.models.spec import ModelSpec

_REGISTRY: dict[str, ModelSpec] = {}


def register(*specs: ModelSpec) -> None:
    """Add specs; a second spec under a taken name is a programming error."""
    for spec in specs:
        key = spec.name.lower()
        if key in _REGISTRY:
            raise ValueError(f"model {spec.name!r} is already registered")
        _REGISTRY[key] = spec


def names() -> list[str]:
    _load_zoo()
    return list(_REGISTRY)


def all_specs() -> list[ModelSpec]:
    _load_zoo()
    return list(_REGISTRY.values())


def get(name: str) -> ModelSpec:
    """The registered spec, or a spec derived from timm's config for any other timm model."""
    _load_zoo()
    spec = _REGISTRY.get(name.lower())
    if spec is not None:
        return spec
    from mitobench.models.zoo.timm_any import spec_from_timm

    derived = spec_from_timm(name)
    if derived is None:
        raise ModelError(
            f"unknown model {name!r}",
            f"use one of {', '.join(_REGISTRY)} (mitobench models list), or any timm model name",
        )
    return derived


def _load_zoo() -> None:
    if not _REGISTRY:
        import mitobench.models.zoo  # noqa: F401  (registers every vendor's specs)
