"""Specs for timm models that are not registered: read from timm's pretrained config."""

from __future__ import annotations

import timm
import torch

from mitobench.models.spec import Family, ModelSpec, Pooling, Source


def spec_from_timm(name: str) -> ModelSpec | None:
    """A spec for any timm architecture (with ImageNet weights when timm has them), else None."""
    arch = name.partition(".")[0]
    if not timm.is_model(arch):
        return None
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=0)
    cfg = model.pretrained_cfg
    hub = cfg.get("hf_hub_id")
    return ModelSpec(
        name=name,
        title=name,
        family=Family.END_TO_END,
        source=Source.TIMM if hub else Source.NONE,
        architecture=arch,
        repo=hub,
        embed_dim=int(model.num_features),
        input_size=int(cfg.get("input_size", (3, 224, 224))[-1]),
        interpolation=str(cfg.get("interpolation", "bicubic")),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),  # type: ignore[arg-type]
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),  # type: ignore[arg-type]
        pooling=Pooling.POOLED,
        convolutional=sum(isinstance(m, torch.nn.Conv2d) for m in model.modules())
        > 1,  # not a patch embedding
        pretrained=bool(hub),
        licence=str(cfg.get("license", "")),
        # derived from timm's pretrained config
    )
