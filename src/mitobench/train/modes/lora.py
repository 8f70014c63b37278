"""LoRA: peft adapters on the encoder's network and the head train; the base weights stay frozen."""

from __future__ import annotations

from peft import LoraConfig as PeftLoraConfig
from peft import inject_adapter_in_model
from torch import nn

from mitobench.errors import ConfigError
from mitobench.models.encoder import Encoder
from mitobench.recipes.config import LoraConfig
from mitobench.train.model import Classifier
from mitobench.train.modes.base import ModeOptions, TrainingMode


class Lora(TrainingMode):
    name = "lora"

    def classifier(self, encoder: Encoder, options: ModeOptions) -> Classifier:
        apply_lora(encoder, options.of(LoraConfig))
        return Classifier(encoder, encoder.embed_dim)


def apply_lora(encoder: Encoder, cfg: LoraConfig) -> None:
    """Freeze the network and inject LoRA adapters into the target modules, in place."""
    targets = cfg.targets or list(encoder.spec.lora_targets)
    names = {
        name.rsplit(".", 1)[-1] for name, m in encoder.network.named_modules() if isinstance(m, nn.Linear)
    }
    found = [t for t in targets if t in names]
    if not found:
        raise ConfigError(
            f"{encoder.spec.name}: none of the LoRA targets {targets} is a linear layer of the model",
            f"set lora.targets to some of: {', '.join(sorted(names)[:12])}",
        )
    for p in encoder.network.parameters():
        p.requires_grad_(False)
    peft_cfg = PeftLoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=found)
    inject_adapter_in_model(peft_cfg, encoder.network)
    for name, p in encoder.network.named_parameters():
        p.requires_grad_("lora_" in name)
