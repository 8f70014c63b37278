"""kaiko.ai: Midnight-12k (a transformers DINOv2 ViT-g/14; MIT)."""

from mitobench.models.spec import HALF, Family, ModelSpec, Pooling, Source

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="midnight",
        title="Midnight-12k",
        family=Family.FOUNDATION,
        source=Source.TRANSFORMERS,
        repo="kaiko-ai/midnight",
        architecture="dinov2",
        kwargs={
            "hidden_size": 1536,
            "num_hidden_layers": 40,
            "num_attention_heads": 24,
            "mlp_ratio": 4,
            "patch_size": 14,
            "image_size": 224,
            "layerscale_value": 1e-5,
            "use_swiglu_ffn": True,
        },
        embed_dim=3072,
        mean=HALF,
        std=HALF,
        pooling=Pooling.CLS_MEAN,
        licence="mit",
        lora_targets=("query", "key", "value", "dense", "weights_in", "weights_out"),
        # model card: concat(CLS, mean of patch tokens) for classification
    ),
)
