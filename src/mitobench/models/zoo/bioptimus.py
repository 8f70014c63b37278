"""Bioptimus: H-optimus-0 (Apache-2.0), H-optimus-1 and H0-mini (gated, CC-BY-NC-ND 4.0)."""

from dataclasses import replace

import torch
from timm.layers import SwiGLUPacked

from mitobench.models.spec import Family, ModelSpec, Pooling, Source

HOPTIMUS_MEAN = (0.707223, 0.578729, 0.703617)
HOPTIMUS_STD = (0.211883, 0.230117, 0.177517)
_GIANT = {"img_size": 224, "init_values": 1e-5, "num_classes": 0, "dynamic_img_size": False}

H_OPTIMUS_0 = ModelSpec(
    name="h-optimus-0",
    title="H-optimus-0",
    family=Family.FOUNDATION,
    source=Source.HF_HUB,
    repo="bioptimus/H-optimus-0",
    architecture="vit_giant_patch14_reg4_dinov2",
    kwargs=_GIANT,
    embed_dim=1536,
    mean=HOPTIMUS_MEAN,
    std=HOPTIMUS_STD,
    pooling=Pooling.CLS,
    gated=True,
    licence="apache-2.0",
)

SPECS: tuple[ModelSpec, ...] = (
    H_OPTIMUS_0,
    # the same architecture and input, other weights and licence
    replace(
        H_OPTIMUS_0,
        name="h-optimus-1",
        title="H-optimus-1",
        repo="bioptimus/H-optimus-1",
        licence="cc-by-nc-nd-4.0",
    ),
    ModelSpec(
        name="h0-mini",
        title="H0-mini",
        family=Family.FOUNDATION,
        source=Source.HF_HUB,
        repo="bioptimus/H0-mini",
        architecture="vit_base_patch14_reg4_dinov2",
        kwargs={
            "img_size": 224,
            "init_values": 1e-5,
            "num_classes": 0,
            "dynamic_img_size": False,
            "mlp_ratio": 5.33334,  # 4096-wide packed SwiGLU: 85.7 M parameters, as the released weights
            "mlp_layer": SwiGLUPacked,
            "act_layer": torch.nn.SiLU,
        },
        embed_dim=1536,
        mean=HOPTIMUS_MEAN,
        std=HOPTIMUS_STD,
        pooling=Pooling.CLS_MEAN,
        gated=True,
        licence="cc-by-nc-nd-4.0",
        # model card: concat(CLS, mean of patch tokens), registers skipped
    ),
)
