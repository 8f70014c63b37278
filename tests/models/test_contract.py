"""One contract over every registered model: random weights, reduced depth, embedding shape and pooling.

Adding a model to the zoo means adding one row to CONTRACT.
"""

from __future__ import annotations

import pytest
import torch

from mitobench.models.builder import build
from mitobench.models.registry import all_specs, get
from mitobench.models.spec import Pooling

# name -> (constructor overrides that shrink it for a CPU test, expected prefix tokens or None)
CONTRACT: dict[str, tuple[dict, int | None]] = {
    "efficientnetv2_m": ({}, None),
    "vit_large_patch16_224": ({"depth": 1}, None),
    "swin_base_patch4_window7_224": ({"depths": (1, 1, 1, 1)}, None),
    "tf_efficientnet_lite0": ({}, None),
    "tf_efficientnet_lite1": ({}, None),
    "tf_efficientnet_lite2": ({}, None),
    "uni": ({"depth": 1}, 1),
    "uni2-h": ({"depth": 1}, 9),
    "virchow": ({"depth": 1}, 1),
    "virchow2": ({"depth": 1}, 5),
    "h-optimus-0": ({"depth": 1}, 5),
    "h-optimus-1": ({"depth": 1}, 5),
    "h0-mini": ({"depth": 1}, 5),
    "prov-gigapath": ({"depth": 1}, 1),
    "phikon-v2": ({"num_hidden_layers": 1}, 1),
    "midnight": ({"num_hidden_layers": 1}, 1),
}


def test_every_registered_model_has_a_contract_row() -> None:
    assert sorted(s.name for s in all_specs()) == sorted(CONTRACT)


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_embedding_shape_and_pooling(name: str) -> None:
    overrides, prefix = CONTRACT[name]
    torch.manual_seed(0)
    encoder = build(name, pretrained=False, overrides=overrides)
    spec = encoder.spec
    images = torch.randint(0, 256, (2, 128, 128, 3), dtype=torch.uint8)
    x = encoder.prepare(images)
    assert x.shape == (2, 3, spec.input_size, spec.input_size)
    with torch.inference_mode():
        emb = encoder(x)
    assert emb.shape == (2, spec.embed_dim)
    assert torch.isfinite(emb).all()
    if spec.pooling is Pooling.POOLED:
        return
    net = encoder.network
    assert net.num_prefix_tokens == prefix
    with torch.inference_mode():
        tokens = net.forward_features(x)
    n_patches = (spec.input_size // _patch_size(net)) ** 2
    assert tokens.shape[1] == prefix + n_patches
    torch.testing.assert_close(emb[:, : tokens.shape[-1]], tokens[:, 0])
    if spec.pooling is Pooling.CLS_MEAN:
        # the mean runs over patch tokens only: class and register tokens are skipped
        torch.testing.assert_close(emb[:, tokens.shape[-1] :], tokens[:, prefix:].mean(1))
        assert not torch.allclose(emb[:, tokens.shape[-1] :], tokens[:, 1:].mean(1)) or prefix == 1


def _patch_size(net: torch.nn.Module) -> int:
    if hasattr(net, "patch_embed"):
        return int(net.patch_embed.patch_size[0])
    return int(net.model.config.patch_size)


def test_virchow2_pools_over_patches_not_registers() -> None:
    spec = get("virchow2")
    assert spec.pooling is Pooling.CLS_MEAN and spec.embed_dim == 2 * 1280
    assert spec.kwargs["reg_tokens"] == 4


def test_published_loading_details() -> None:
    assert get("uni").hub_id == "hf-hub:MahmoodLab/uni"
    assert get("uni").kwargs["init_values"] == 1e-5 and get("uni").kwargs["dynamic_img_size"]
    u2 = get("uni2-h").kwargs
    assert (u2["depth"], u2["num_heads"], u2["embed_dim"], u2["reg_tokens"]) == (24, 24, 1536, 8)
    h0 = get("h-optimus-0")
    assert h0.mean == (0.707223, 0.578729, 0.703617) and h0.std == (0.211883, 0.230117, 0.177517)
    assert h0.kwargs["dynamic_img_size"] is False
    gp = get("prov-gigapath")
    assert (gp.resize_size, gp.input_size, gp.interpolation) == (256, 224, "bicubic")
    assert get("tf_efficientnet_lite0").mean == (0.5, 0.5, 0.5)


def test_any_timm_model_name_is_accepted() -> None:
    spec = get("resnet18")
    assert spec.embed_dim == 512 and spec.family.value == "end-to-end"
    enc = build(spec, pretrained=False)
    assert enc.embed(torch.zeros(1, 64, 64, 3, dtype=torch.uint8)).shape == (1, 512)


def test_unknown_model_is_a_user_error() -> None:
    from mitobench.errors import ModelError

    with pytest.raises(ModelError, match="unknown model 'unii'"):
        get("unii")


def test_registry_refuses_duplicates() -> None:
    from mitobench.models.registry import collect
    from mitobench.models.zoo import ALL_SPECS

    with pytest.raises(ValueError, match="already registered"):
        collect([*ALL_SPECS, get("uni")])


@pytest.mark.parametrize(("name", "millions"), [("h0-mini", 85.7), ("uni", 303.3), ("virchow2", 631.2)])
def test_full_size_parameter_count_matches_the_released_weights(name: str, millions: float) -> None:
    """Built at full size (on the meta device: no memory), the network has the weights' size."""
    from mitobench.models.builder import create_network

    with torch.device("meta"):
        net = create_network(get(name), None)
    assert sum(p.numel() for p in net.parameters()) / 1e6 == pytest.approx(millions, abs=0.1)
