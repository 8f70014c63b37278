"""Microsoft / Providence: Prov-GigaPath tile encoder (gated; Apache-2.0)."""

from mitobench.models.spec import Family, ModelSpec, Pooling, Source

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="prov-gigapath",
        title="Prov-GigaPath",
        family=Family.FOUNDATION,
        source=Source.HF_HUB,
        repo="prov-gigapath/prov-gigapath",
        architecture="vit_giant_patch14_dinov2",
        kwargs={
            "img_size": 224,
            "in_chans": 3,
            "patch_size": 16,
            "embed_dim": 1536,
            "depth": 40,
            "num_heads": 24,
            "init_values": 1e-5,
            "mlp_ratio": 5.33334,
            "num_classes": 0,
        },
        embed_dim=1536,
        input_size=224,
        resize_size=256,
        interpolation="bicubic",
        pooling=Pooling.CLS,
        gated=True,
        licence="apache-2.0",
    ),
)
