"""`mitobench models check`: is this model usable here, and from where do its weights come?"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from mitobench.errors import MitobenchError
from mitobench.models import weights as wmod
from mitobench.models.builder import build
from mitobench.models.registry import get
from mitobench.models.sources import source_of
from mitobench.models.spec import Family, ModelSpec


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str


@dataclass
class Diagnosis:
    spec: ModelSpec
    checks: list[Check] = field(default_factory=list)
    embedding_shape: tuple[int, ...] | None = None
    advice: str = ""

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def offline_available(spec: ModelSpec) -> bool:
    """Whether the model can be built with its default weights without a network."""
    return source_of(spec).offline(spec)


def dtype_advice(spec: ModelSpec) -> str:
    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return f"CUDA ({torch.cuda.get_device_name(0)}): autocast {'bfloat16' if bf16 else 'float32'}" + (
            "; avoid float16 (UNI-style ViTs overflow to NaN)" if spec.family is Family.FOUNDATION else ""
        )
    return "CPU: bfloat16 autocast where the CPU supports it (≈2× inference), channels_last for CNNs"


def diagnose(name: str, weights: str | Path | None = None, random_init: bool = False) -> Diagnosis:
    """Token, network, weight source, a build and one forward pass — each as a check."""
    spec = get(name)
    diag = Diagnosis(spec)
    source = source_of(spec)
    uses_hub = weights is None and not random_init and spec.pretrained and source.uses_hub
    if uses_hub:
        token = wmod.hub_token()
        if token:
            detail = "found (HF_TOKEN or cached login)"
        else:
            detail = "missing: gated model, set HF_TOKEN or run `hf auth login`" if spec.gated else "none"
        diag.checks.append(Check("token", bool(token) or not spec.gated, detail))
        cached = wmod.hub_cached(spec, source.wanted)
        if wmod.hub_offline():
            diag.checks.append(
                Check(
                    "network",
                    cached,
                    "HF_HUB_OFFLINE is set; "
                    + ("weights are in the local cache" if cached else "weights are NOT in the local cache"),
                )
            )
        else:
            reachable = wmod.hub_reachable()
            detail = (
                "hub reachable"
                if reachable
                else "hub unreachable; weights " + ("in the local cache" if cached else "not cached")
            )
            diag.checks.append(Check("network", reachable or cached, detail))
    try:
        encoder = build(spec, weights=weights, pretrained=not random_init)
        diag.checks.append(Check("weights", True, encoder.weights_origin))
        images = torch.randint(0, 256, (1, 128, 128, 3), dtype=torch.uint8)
        emb = encoder.embed(images)
        diag.embedding_shape = tuple(emb.shape)
        ok = bool(torch.isfinite(emb).all()) and emb.shape[-1] == spec.embed_dim
        diag.checks.append(Check("forward", ok, f"embedding {tuple(emb.shape)}, {emb.dtype}"))
    except MitobenchError as exc:
        diag.checks.append(Check("weights", False, str(exc)))
    diag.advice = dtype_advice(spec)
    return diag
