"""Paige: Virchow and Virchow2 (gated; CC-BY-NC-ND 4.0).

Their model cards embed a tile as concat(CLS, mean of the patch tokens); Virchow2's four register
tokens are skipped by the mean (pooling uses `num_prefix_tokens`). The paper's scripts instead
normalised with 0.5/0.5 and used only the CLS token under LoRA; the `paper` preset does as they
did, other presets follow the model cards.
"""

from dataclasses import replace

import torch
from timm.layers import SwiGLUPacked

from mitobench.models.spec import Family, ModelSpec, Pooling, Source

_VIRCHOW = {
    "img_size": 224,
    "init_values": 1e-5,
    "num_classes": 0,
    "mlp_ratio": 5.3375,
    "global_pool": "",
    "dynamic_img_size": True,
    "mlp_layer": SwiGLUPacked,
    "act_layer": torch.nn.SiLU,
}

VIRCHOW = ModelSpec(
    name="virchow",
    title="Virchow",
    family=Family.FOUNDATION,
    source=Source.HF_HUB,
    repo="paige-ai/Virchow",
    architecture="vit_huge_patch14_224",
    kwargs=_VIRCHOW,
    embed_dim=2560,
    pooling=Pooling.CLS_MEAN,
    gated=True,
    licence="cc-by-nc-nd-4.0",
)

SPECS: tuple[ModelSpec, ...] = (
    VIRCHOW,
    # the same architecture with four register tokens
    replace(
        VIRCHOW,
        name="virchow2",
        title="Virchow2",
        repo="paige-ai/Virchow2",
        kwargs={**_VIRCHOW, "reg_tokens": 4},
    ),
)
