"""One builder reads any spec: architecture, weights and pooling become a ready `Encoder`."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import timm
import torch
from torch import nn

from mitobench.errors import ModelError
from mitobench.models import weights as wmod
from mitobench.models.encoder import Encoder, TransformersTokens
from mitobench.models.loading import load_by_order, load_checked, load_timm_state, read_state_dict
from mitobench.models.registry import get
from mitobench.models.spec import ModelSpec, Source


def create_network(
    spec: ModelSpec,
    weights: wmod.Weights | None,
    overrides: Mapping[str, Any] | None = None,
    num_classes: int = 0,
) -> nn.Module:
    """The bare network of `spec` with `weights` loaded (random init when None).

    `overrides` change constructor arguments, e.g. `depth=2` for a reduced test model.
    `num_classes` keeps (1000) or drops (0) an ImageNet head where the weights carry one.
    """
    kwargs = {**spec.kwargs, **(overrides or {})}
    if spec.source is Source.TRANSFORMERS:
        return _create_transformers(spec, weights, kwargs)
    kwargs["num_classes"] = num_classes
    try:
        network = timm.create_model(spec.architecture, pretrained=False, **kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{spec.name}: cannot build {spec.architecture} ({exc})", "check the spec's kwargs"
        ) from None
    if weights is None:
        return network
    state = read_state_dict(weights.path, spec.name)
    if spec.source is Source.PACKAGE and weights.origin.startswith("package:"):
        if num_classes == 0:
            network.reset_classifier(1000)
            load_by_order(network, state, spec.name, weights.origin)
            network.reset_classifier(0)
        else:
            load_by_order(network, state, spec.name, weights.origin)
    else:
        load_timm_state(network, state, spec.name, weights.origin)
    return network


def _create_transformers(spec: ModelSpec, weights: wmod.Weights | None, kwargs: dict[str, Any]) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    if weights is None or weights.path.is_file():
        config = AutoConfig.for_model(spec.architecture, **kwargs)
        network = TransformersTokens(AutoModel.from_config(config))
        if weights is not None:
            state = read_state_dict(weights.path, spec.name)
            load_checked(network.model, state, spec.name, weights.origin)
        return network
    try:
        model = AutoModel.from_pretrained(str(weights.path))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{spec.name}: cannot load transformers weights from {weights.path} ({exc})",
            f"download the whole repo: hf download {spec.repo} --local-dir DIR",
        ) from None
    return TransformersTokens(model)


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
    resolved = wmod.resolve(spec, weights) if (pretrained or weights is not None) else None
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
