"""The model registry: a name maps to exactly one spec; duplicates are refused loudly."""

from __future__ import annotations

from collections.abc import Iterable

from mitobench.errors import ModelError, did_you_mean
from mitobench.models.spec import ModelSpec
from mitobench.models.zoo import ALL_SPECS
from mitobench.models.zoo.timm_any import spec_from_timm


def collect(specs: Iterable[ModelSpec]) -> dict[str, ModelSpec]:
    """Name (lower case) -> spec; a second spec under a taken name is a programming error."""
    out: dict[str, ModelSpec] = {}
    for spec in specs:
        key = spec.name.lower()
        if key in out:
            raise ValueError(f"model {spec.name!r} is already registered")
        out[key] = spec
    return out


_REGISTRY = collect(ALL_SPECS)


def names() -> list[str]:
    return list(_REGISTRY)


def all_specs() -> list[ModelSpec]:
    return list(_REGISTRY.values())


def get(name: str) -> ModelSpec:
    """The registered spec, or a spec derived from timm's config for any other timm model."""
    spec = _REGISTRY.get(name.lower())
    if spec is not None:
        return spec
    derived = spec_from_timm(name)
    if derived is None:
        import timm

        hint = did_you_mean(name.lower(), [*_REGISTRY, *timm.list_models()])
        raise ModelError(
            f"unknown model {name!r}",
            f"{hint}use one of {', '.join(_REGISTRY)} (mitobench models list), or any timm model name",
        )
    return derived


def require_known(model_names: Iterable[str]) -> None:
    """Every name is a registered or a timm model, else `get`'s one message: checked before any
    data is fetched or hashed, so a typo costs no download and no job."""
    for name in dict.fromkeys(model_names):
        get(name)
