"""BatchNorm folding for inference: same outputs, fewer passes, and never a silent wrong fold."""

from __future__ import annotations

import copy

import torch
from torch import nn

from mitobench.models.builder import build
from mitobench.models.fusion import conv_bn_pairs, fold_batchnorm, inference_copy


def _with_random_statistics(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, as after training, so a wrong fold cannot hide."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def _n_batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_efficientnet_folds_every_batchnorm_with_the_same_output() -> None:
    torch.manual_seed(0)
    encoder = _with_random_statistics(build("tf_efficientnet_lite0", pretrained=False)).eval()
    images = torch.randint(0, 256, (4, 128, 128, 3), dtype=torch.uint8)
    x = encoder.prepare(images, 128)
    before = _n_batchnorms(encoder)
    assert before > 40 and len(conv_bn_pairs(encoder)) == before
    with torch.inference_mode():
        expected = encoder(x)
    fast = inference_copy(encoder, x[:2])
    assert fast is not encoder
    assert _n_batchnorms(fast) == 0
    assert _n_batchnorms(encoder) == before  # the original is untouched
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(encoder(x), expected, rtol=0, atol=0)


class _Misleading(nn.Module):
    """A Conv2d registered just before a BatchNorm2d that normalises something else."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) + self.bn(x)


def test_a_fold_that_changes_the_output_is_discarded() -> None:
    model = _with_random_statistics(_Misleading()).eval()
    assert conv_bn_pairs(model) == [("conv", "bn")]
    wrong = copy.deepcopy(model)
    fold_batchnorm(wrong)
    x = torch.randn(2, 3, 8, 8)
    with torch.inference_mode():
        assert not torch.allclose(wrong(x), model(x), atol=1e-3)  # the structural guess is wrong here
    assert inference_copy(model, x) is model


def test_models_without_batchnorm_are_returned_as_they_are() -> None:
    encoder = build("vit_small_patch16_224", pretrained=False, overrides={"depth": 1})
    x = torch.randn(2, 3, 224, 224)
    assert conv_bn_pairs(encoder) == []
    assert inference_copy(encoder, x) is encoder


def test_folding_adds_no_more_bf16_error_than_bf16_itself() -> None:
    """bf16 rounds the folded weights instead of the BatchNorm output: the error must stay alike."""
    torch.manual_seed(1)
    encoder = _with_random_statistics(build("tf_efficientnet_lite0", pretrained=False)).eval()
    x = encoder.prepare(torch.randint(0, 256, (8, 128, 128, 3), dtype=torch.uint8), 128)
    fast = inference_copy(encoder, x[:2])
    with torch.inference_mode():
        exact = encoder(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            plain, folded = encoder(x).float(), fast(x).float()
    plain_error = (plain - exact).abs().mean()
    folded_error = (folded - exact).abs().mean()
    assert folded_error < 2 * plain_error
