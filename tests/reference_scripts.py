"""The reference training scripts (../shared/reference/scripts) as an independent source for tests.

Their `transforms.Compose([...])` assignments are read with `ast` and built with torchvision
itself, so a test compares our recipes and our batched transforms with what the scripts ran.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from torchvision import transforms

from tests.conftest import REPO

SCRIPTS = Path(REPO.parent / "shared" / "reference" / "scripts")

# (model, mode) -> the script that defines it
SCRIPT_OF: dict[tuple[str, str], str] = {
    ("efficientnetv2_m", "e2e"): "End-to-End_DL_Baselines/efficientnetv2_m/efficientnetv2_m.py",
    (
        "vit_large_patch16_224",
        "e2e",
    ): "End-to-End_DL_Baselines/vit_large_patch16_224/vit_large_patch16_224.py",
    ("swin_base_patch4_window7_224", "e2e"): (
        "End-to-End_DL_Baselines/swin_base_patch4_window7_224/swin_base_patch4_window7_224.py"
    ),
    ("uni", "probe"): "Foundation_Models/Linear_Probing/uni/uni.py",
    ("uni2-h", "probe"): "Foundation_Models/Linear_Probing/uni2-h/uni2-h.py",
    ("virchow", "probe"): "Foundation_Models/Linear_Probing/Virchow/virchow.py",
    ("virchow2", "probe"): "Foundation_Models/Linear_Probing/Virchow2/virchow2.py",
    ("h-optimus-0", "probe"): "Foundation_Models/Linear_Probing/h-optimus-0/hoptimus0.py",
    ("h-optimus-1", "probe"): "Foundation_Models/Linear_Probing/h-optimus-1/hoptimus1.py",
    ("prov-gigapath", "probe"): "Foundation_Models/Linear_Probing/prov-gigapath/prov-gigapath.py",
    ("uni", "lora"): "Foundation_Models/LoRA/uni/uni_lora.py",
    ("uni2-h", "lora"): "Foundation_Models/LoRA/uni2-h/uni2-h_lora.py",
    ("virchow", "lora"): "Foundation_Models/LoRA/Virchow/virchow_lora.py",
    ("virchow2", "lora"): "Foundation_Models/LoRA/Virchow2/virchow2_lora.py",
    ("h-optimus-0", "lora"): "Foundation_Models/LoRA/h-optimus-0/hoptimus0.py",
    ("h-optimus-1", "lora"): "Foundation_Models/LoRA/h-optimus-1/hoptimus1.py",
    ("prov-gigapath", "lora"): "Foundation_Models/LoRA/prov-gigapath/prov-gigapath_lora.py",
}

# What `create_transform(**resolve_data_config(model.pretrained_cfg))` reads from the hub configs of
# the models whose scripts take their transform from the hub (not in the scripts; recorded here).
HUB_CFG: dict[str, dict[str, object]] = {
    "uni": {"input_size": (3, 224, 224), "interpolation": "bilinear", "crop_pct": 1.0},
    "uni2-h": {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 1.0},
    "virchow": {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 1.0},
    "virchow2": {"input_size": (3, 224, 224), "interpolation": "bicubic", "crop_pct": 1.0},
}


def script_path(model: str, mode: str) -> Path:
    path = SCRIPTS / SCRIPT_OF[(model, mode)]
    if not path.is_file():
        pytest.skip(f"reference scripts not found at {SCRIPTS}")
    return path


def _tree(model: str, mode: str) -> ast.Module:
    return ast.parse(script_path(model, mode).read_text())


def compose(model: str, mode: str, name: str) -> transforms.Compose | None:
    """The script's `name = transforms.Compose([...])`, built with torchvision; None if absent."""
    for node in ast.walk(_tree(model, mode)):
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)
            and isinstance(node.value, ast.Call)
            and ast.unparse(node.value.func) == "transforms.Compose"
        ):
            return eval(compile(ast.Expression(node.value), "<script>", "eval"), {"transforms": transforms})
    return None


def calls(model: str, mode: str, func: str) -> list[ast.Call]:
    """Every call to `func` (e.g. `optim.Adam`) in the script."""
    return [
        n for n in ast.walk(_tree(model, mode)) if isinstance(n, ast.Call) and ast.unparse(n.func) == func
    ]


def keyword(call: ast.Call, name: str) -> object:
    """A literal keyword argument of a call."""
    for kw in call.keywords:
        if kw.arg == name:
            return ast.literal_eval(kw.value)
    raise KeyError(name)


def assigned(model: str, mode: str, name: str) -> object:
    """The literal value of a top-level `name = ...` in the script."""
    for node in _tree(model, mode).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def source(model: str, mode: str) -> str:
    return script_path(model, mode).read_text()
