"""One builder reads any spec: architecture, weights and pooling become a ready `Encoder`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mitobench.models import weights as wmod
from mitobench.models.encoder import Encoder
from mitobench.models.registry import get
from mitobench.models.sources import resolve, source_of
from mitobench.models.spec import ModelSpec


def create_network(
    spec: ModelSpec,
    weights: wmod.Weights | None,
    overrides: Mapping[str, Any] | None = None,
    num_classes: int = 0,
) -> nn.Module:
    """The bare network of `spec` with `weights` loaded (random init when None), as its source
    makes and loads it.

    `overrides` change constructor arguments, e.g. `depth=2` for a reduced test model.
    `num_classes` keeps (1000) or drops (0) an ImageNet head where the weights carry one.
    """
    kwargs = {**spec.kwargs, **(overrides or {})}
    return source_of(spec).create(spec, weights, kwargs, num_classes)


def build(
    name_or_spec: str | ModelSpec,
    weights: str | Path | None = None,
    pretrained: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> Encoder:
    """Build an encoder: pretrained weights from `weights` (file or folder) or the spec's source.

    `pretrained=False` gives a random initialisation of the same architecture (tests, or
    training from scratch); `overrides` shrink it (e.g. `{"depth": 2}`).
    """
    spec = get(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec
    resolved = resolve(spec, weights) if (pretrained or weights is not None) else None
    network = create_network(spec, resolved, overrides)
    network.eval()
    origin = resolved.origin if resolved else "random-init"
    fingerprint = resolved.fingerprint() if resolved else "random-init:" + parameter_hash(network)
    return Encoder(spec, network, origin, fingerprint)


def parameter_hash(module: nn.Module) -> str:
    """A hash of every parameter and buffer (identifies randomly initialised weights)."""
    h = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:24]
