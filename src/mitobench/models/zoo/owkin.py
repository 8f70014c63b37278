"""Owkin: Phikon-v2 (a transformers DINOv2 ViT-L/16; Owkin non-commercial licence)."""

from mitobench.models.spec import Family, ModelSpec, Pooling, Source

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="phikon-v2",
        title="Phikon-v2",
        family=Family.FOUNDATION,
        source=Source.TRANSFORMERS,
        repo="owkin/phikon-v2",
        architecture="dinov2",
        kwargs={
            "hidden_size": 1024,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "mlp_ratio": 4,
            "patch_size": 16,
            "image_size": 224,
            "layerscale_value": 1e-5,
        },
        embed_dim=1024,
        pooling=Pooling.CLS,
        gated=False,
        licence="owkin-non-commercial",
        lora_targets=("query", "key", "value", "dense", "fc1", "fc2"),
    ),
)
