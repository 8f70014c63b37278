"""Mahmood Lab: UNI and UNI2-h (gated; CC-BY-NC-ND 4.0)."""

import torch
from timm.layers import SwiGLUPacked

from mitobench.models.spec import Family, ModelSpec, Pooling, Source

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="uni",
        title="UNI",
        family=Family.FOUNDATION,
        source=Source.HF_HUB,
        repo="MahmoodLab/uni",
        architecture="vit_large_patch16_224",
        kwargs={
            "img_size": 224,
            "patch_size": 16,
            "init_values": 1e-5,
            "num_classes": 0,
            "dynamic_img_size": True,
        },
        embed_dim=1024,
        pooling=Pooling.CLS,
        gated=True,
        licence="cc-by-nc-nd-4.0",
    ),
    ModelSpec(
        name="uni2-h",
        title="UNI2-h",
        family=Family.FOUNDATION,
        source=Source.HF_HUB,
        repo="MahmoodLab/UNI2-h",
        architecture="vit_giant_patch14_224",
        kwargs={
            "img_size": 224,
            "patch_size": 14,
            "depth": 24,
            "num_heads": 24,
            "init_values": 1e-5,
            "embed_dim": 1536,
            "mlp_ratio": 2.66667 * 2,
            "num_classes": 0,
            "no_embed_class": True,
            "mlp_layer": SwiGLUPacked,
            "act_layer": torch.nn.SiLU,
            "reg_tokens": 8,
            "dynamic_img_size": True,
        },
        embed_dim=1536,
        pooling=Pooling.CLS,
        gated=True,
        licence="cc-by-nc-nd-4.0",
    ),
)
