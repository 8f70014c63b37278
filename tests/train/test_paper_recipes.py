"""The `paper` preset, model by model, against the reference scripts' own code (read with `ast`)."""

from __future__ import annotations

import ast

import pytest
import torch

from mitobench.models.registry import get, names
from mitobench.models.spec import Pooling
from mitobench.recipes.config import MODES, PRESETS, LoraConfig, preset, train_config
from mitobench.train.precision import autocast_dtype
from tests.reference_scripts import SCRIPT_OF, assigned, calls, keyword, source


@pytest.mark.parametrize(("model", "mode"), sorted(SCRIPT_OF))
def test_optimiser_and_schedule_are_the_scripts(model: str, mode: str) -> None:
    cfg = train_config(mode, "paper", model=model)  # type: ignore[arg-type]
    (adam,) = calls(model, mode, "optim.Adam")
    assert cfg.optimizer == "adam"
    assert cfg.lr == keyword(adam, "lr") and cfg.weight_decay == keyword(adam, "weight_decay")
    (plateau,) = calls(model, mode, "optim.lr_scheduler.ReduceLROnPlateau")
    assert cfg.schedule == "plateau" and keyword(plateau, "mode") == "max"
    assert cfg.plateau_factor == keyword(plateau, "factor")
    assert cfg.plateau_patience == keyword(plateau, "patience")
    assert cfg.min_lr == keyword(plateau, "min_lr")


@pytest.mark.parametrize(("model", "mode"), sorted(SCRIPT_OF))
def test_epochs_patience_batch_and_sampler_are_the_scripts(model: str, mode: str) -> None:
    cfg = train_config(mode, "paper", model=model)  # type: ignore[arg-type]
    assert cfg.batch_size == assigned(model, mode, "batch_size")
    assert cfg.max_epochs == assigned(model, mode, "num_epochs")
    try:
        patience = assigned(model, mode, "early_stop_patience")
    except KeyError:
        patience = assigned(model, mode, "early_stopping_patience")
    assert cfg.early_stopping_patience == patience
    text = source(model, mode)
    # WeightedRandomSampler with one draw per training figure, the last batch kept
    assert "WeightedRandomSampler(sample_weights, len(sample_weights), replacement=True)" in text
    assert "drop_last" not in text and not cfg.drop_last and cfg.balance == "sampler"
    assert cfg.epoch_size is None
    # BCE on one logit, threshold 0.5, best epoch by validation balanced accuracy
    assert "nn.BCEWithLogitsLoss()" in text and cfg.loss == "bce" and cfg.label_smoothing == 0
    assert "> 0.5" in text and cfg.threshold == "fixed" and cfg.fixed_threshold == 0.5
    assert "balanced_accuracy_score" in text and cfg.selection == "balanced_accuracy"
    assert cfg.tta is False


@pytest.mark.parametrize(("model", "mode"), sorted(SCRIPT_OF))
def test_precision_is_the_scripts(model: str, mode: str) -> None:
    cfg = train_config(mode, "paper", model=model)  # type: ignore[arg-type]
    text = source(model, mode)
    fp16 = 'torch.autocast(device_type="cuda", dtype=torch.float16)' in text
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert autocast_dtype(cfg.precision, cuda) == (torch.float16 if fp16 else None)
    assert autocast_dtype(cfg.precision, cpu) is None  # the scripts' CUDA autocast is inert elsewhere
    if mode != "probe":
        assert not fp16 and "GradScaler" not in text


@pytest.mark.parametrize(("model", "mode"), sorted(k for k in SCRIPT_OF if k[1] != "e2e"))
def test_pooling_is_what_the_script_reads(model: str, mode: str) -> None:
    cfg = train_config(mode, "paper", model=model)  # type: ignore[arg-type]
    pooling = cfg.pooling_for(get(model))
    text = source(model, mode)
    if mode == "probe" and "torch.cat([class_token, patch_tokens.mean(1)]" in text:
        # Virchow: output[:, 1:]; Virchow2: output[:, 5:] skips the 4 registers = timm's prefix tokens
        assert pooling is Pooling.CLS_MEAN
        start = int(text.split("patch_tokens = output[:, ")[1].split(":")[0])
        regs = dict(get(model).kwargs).get("reg_tokens", 0)
        assert start == 1 + regs
    else:  # timm's `token` pooling (the class token), or `outputs[:, 0]` under LoRA
        assert pooling is Pooling.CLS


@pytest.mark.parametrize("model", sorted(m for m, mode in SCRIPT_OF if mode == "lora"))
def test_lora_settings_are_the_scripts(model: str) -> None:
    (call,) = calls(model, "lora", "LoraConfig")
    ours = LoraConfig()
    assert ours.r == keyword(call, "r") and ours.alpha == keyword(call, "lora_alpha")
    assert ours.dropout == keyword(call, "lora_dropout")
    assert list(get(model).lora_targets) == keyword(call, "target_modules")
    assert keyword(call, "modules_to_save") == ["head"] and keyword(call, "bias") == "none"


def test_efficientnetv2_m_starts_from_scratch_and_the_other_baselines_from_imagenet() -> None:
    for model, pretrained in (
        ("efficientnetv2_m", False),
        ("vit_large_patch16_224", True),
        ("swin_base_patch4_window7_224", True),
    ):
        (call,) = [c for c in calls(model, "e2e", "timm.create_model")]
        assert keyword(call, "pretrained") is pretrained
        assert get(model).pretrained is pretrained
        assert ast.literal_eval(call.args[0]) == get(model).architecture


def test_every_preset_mode_and_model_makes_a_valid_recipe() -> None:
    for name in PRESETS:
        file = preset(name)
        assert set(file.models) <= set(names()), f"{name}: unknown models in the preset"
        for mode in MODES:
            for model in names():
                cfg = train_config(mode, name, model=model)  # type: ignore[arg-type]
                spec = get(model)
                t = cfg.transform_for(spec)
                assert t.resize >= t.size and len(t.mean) == 3
                assert cfg.pooling_for(spec) in Pooling


def test_prov_gigapath_keeps_its_resize_and_crop_at_any_input_size() -> None:
    spec = get("prov-gigapath")
    assert spec.transform_at(224).resize == 256
    assert spec.transform_at(112).resize == 128
    assert train_config("probe", "paper", model="prov-gigapath").transform_for(spec).resize == 256
    assert train_config("lora", "paper", model="prov-gigapath").transform_for(spec).resize == 224
    assert train_config("probe", "gpu", model="prov-gigapath").transform_for(spec).resize == 256
    smaller = train_config("probe", "paper", {"input_size": 112}, model="prov-gigapath")
    assert (smaller.transform_for(spec).size, smaller.transform_for(spec).resize) == (112, 128)
    e2e = train_config("e2e", "paper", {"input_size": 160}, model="efficientnetv2_m")
    assert e2e.transform_for(get("efficientnetv2_m")).resize == 160  # no crop of a 224 image


@pytest.mark.parametrize("model", ["uni", "virchow2", "h-optimus-0"])
def test_lora_adapts_the_modules_the_scripts_peft_config_adapts(model: str) -> None:
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    from mitobench.models.builder import build, create_network
    from mitobench.train.modes import ModeOptions, get_mode

    (call,) = calls(model, "lora", "LoraConfig")
    script_cfg = PeftLoraConfig(**{kw.arg: ast.literal_eval(kw.value) for kw in call.keywords})
    torch.manual_seed(0)
    theirs = get_peft_model(create_network(get(model), None, {"depth": 1}, num_classes=1), script_cfg)
    adapted_theirs = {n.removeprefix("base_model.model.").rsplit(".lora_A", 1)[0]
                      for n, _ in theirs.named_parameters() if ".lora_A" in n}  # fmt: skip
    ours = get_mode("lora").classifier(build(model, pretrained=False, overrides={"depth": 1}), ModeOptions())
    adapted_ours = {n.removeprefix("encoder.network.").rsplit(".lora_A", 1)[0]
                    for n, p in ours.named_parameters() if ".lora_A" in n and p.requires_grad}  # fmt: skip
    assert adapted_ours == adapted_theirs
    assert "patch_embed.proj" in adapted_ours  # `proj` also names the patch embedding's convolution


@pytest.mark.parametrize(
    "model", ["uni", "uni2-h", "virchow", "virchow2", "h-optimus-0", "h-optimus-1", "prov-gigapath"]
)
def test_lora_heads_start_as_the_scripts_heads(model: str) -> None:
    """A script whose `create_model` call (or its kwargs) asks for `num_classes=1` gets timm's ViT
    head initialisation; one that adds its own `nn.Linear` or calls `reset_classifier` gets
    PyTorch's. Read from the script, then checked on a head our recipe initialises."""
    from mitobench.train.model import init_head

    text = source(model, "lora")
    (create,) = calls(model, "lora", "create_model") + calls(model, "lora", "timm.create_model")
    given = {kw.arg: kw.value for kw in create.keywords}
    if "num_classes" in given:
        num_classes = ast.literal_eval(given["num_classes"])
    else:  # create_model(..., **timm_kwargs): the dict literal's entry
        num_classes = 1 if None in given and "'num_classes': 1" in text else None
    timm_head = num_classes == 1 and "reset_classifier" not in text and ".head = nn.Linear" not in text
    cfg = train_config("lora", "paper", model=model)
    assert cfg.head_init == ("timm" if timm_head else "torch"), model

    torch.manual_seed(0)
    head = torch.nn.Linear(1024, 1).requires_grad_(False)
    init_head(head, cfg.head_init)
    if timm_head:  # truncated normal, std 0.02, zero bias
        assert abs(float(head.weight.std()) - 0.02) < 0.002 and float(head.weight.abs().max()) > 1 / 32
        assert torch.count_nonzero(head.bias) == 0
    else:  # nn.Linear's kaiming-uniform: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias too
        bound = 1 / 1024**0.5
        assert float(head.weight.abs().max()) <= bound and float(head.weight.std()) < 0.02
        assert float(head.bias.abs()) <= bound and torch.count_nonzero(head.bias) == 1


def test_test_sets_are_scored_as_the_upstream_notebooks() -> None:
    """fp16 autocast at test time where the inference notebooks used it (recorded from the upstream
    notebooks, which are not among the shared reference files): H-optimus-0/1 with LoRA, and the
    probe heads of UNI, UNI2-h and Virchow; everything else as validated."""
    fp16 = {
        ("uni", "probe"),
        ("uni2-h", "probe"),
        ("virchow", "probe"),
        ("h-optimus-0", "lora"),
        ("h-optimus-1", "lora"),
    }
    for model, mode in SCRIPT_OF:
        cfg = train_config(mode, "paper", model=model)  # type: ignore[arg-type]
        assert cfg.test_precision == ("fp16" if (model, mode) in fp16 else None), (model, mode)
        assert cfg.for_testing().eval_precision == ("fp16" if (model, mode) in fp16 else cfg.eval_precision)
    for name in PRESETS:
        if name != "paper":
            assert train_config("probe", name).test_precision is None
