"""The embedding-cache key covers every input of an embedding, a spec field added later included."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import SimpleNamespace

import pytest

from mitobench.models.registry import get as get_spec
from mitobench.models.spec import ModelSpec, Pooling
from mitobench.train.embeddings import embedding_key


def _encoder(spec: ModelSpec) -> SimpleNamespace:
    return SimpleNamespace(spec=spec, fingerprint="w", transform=spec.transform, pooling=Pooling.CLS)


def _changed(value: object) -> object:
    """Another value of the same kind."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, tuple):
        return (*value, value[0]) if value else ("x",)
    if value is None:
        return 7
    if isinstance(value, Mapping):
        return {**value, "extra": 1}
    members = list(type(value))  # an enum
    return members[(members.index(value) + 1) % len(members)]


def test_every_field_of_the_spec_is_in_the_key() -> None:
    spec = get_spec("uni")
    base = embedding_key(_encoder(spec), "data", "fp32")
    for f in dataclasses.fields(spec):
        other = dataclasses.replace(spec, **{f.name: _changed(getattr(spec, f.name))})
        assert embedding_key(_encoder(other), "data", "fp32") != base, f.name


def test_a_field_added_to_the_spec_later_changes_the_key_without_listing_it() -> None:
    Extended = dataclasses.make_dataclass(
        "Extended", [("new_knob", int, dataclasses.field(default=0))], bases=(ModelSpec,), frozen=True
    )
    spec = get_spec("uni")
    values = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    one, two = Extended(**values, new_knob=1), Extended(**values, new_knob=2)
    assert embedding_key(_encoder(one), "d", "fp32") != embedding_key(_encoder(two), "d", "fp32")


@pytest.mark.parametrize("what", ["data", "precision", "weights"])
def test_the_data_precision_and_weights_are_in_the_key(what: str) -> None:
    spec = get_spec("uni")
    enc = _encoder(spec)
    base = embedding_key(enc, "d", "fp32")
    if what == "data":
        assert embedding_key(enc, "e", "fp32") != base
    elif what == "precision":
        assert embedding_key(enc, "d", "bf16") != base
    else:
        assert embedding_key(SimpleNamespace(**{**vars(enc), "fingerprint": "v"}), "d", "fp32") != base
