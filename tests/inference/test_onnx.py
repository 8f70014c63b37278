"""ONNX export: the fold ensemble as one graph run by ONNX Runtime gives PyTorch's
probabilities within 1e-4 on real patches, through the same commands."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def onnx_model(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mitobench.inference.bundle import export_run

    target = tmp_path_factory.mktemp("onnx") / "m.onnx"
    export_run(trained_run, target, onnx=True)  # what `mitobench export --format onnx` calls
    return target


def test_onnx_runtime_gives_pytorchs_probabilities_on_real_patches(
    trained_run, onnx_model, real_patches
) -> None:
    from mitobench.inference.onnx import from_onnx
    from mitobench.inference.predictor import from_run

    _, arrays = real_patches
    images = np.stack(arrays)
    torch_probs = from_run(trained_run).fold_probs(images)
    engine = from_onnx(onnx_model)
    onnx_probs = engine.fold_probs(images)
    assert sorted(onnx_probs) == sorted(torch_probs) == [0, 1]
    for k in torch_probs:
        assert np.abs(onnx_probs[k] - torch_probs[k]).max() < 1e-4
    assert engine.threshold == pytest.approx(from_run(trained_run).threshold)
    assert engine.patch.size == 128


def test_the_onnx_file_keeps_module_names_but_not_the_makers_paths(onnx_model) -> None:
    """The exporter writes every node's Python stack trace (this checkout's and this environment's
    file paths) into the graph; the export drops those and keeps the module names."""
    import onnx

    import mitobench
    from mitobench.inference.onnx import STACK_TRACE

    graph = onnx.load(str(onnx_model)).graph
    keys = {p.key for node in graph.node for p in node.metadata_props}
    assert STACK_TRACE not in keys and "pkg.torch.onnx.name_scopes" in keys
    data = onnx_model.read_bytes()
    site_packages = Path(onnx.__file__).parent.parent  # where timm's and torch's sources live
    for path in (Path(mitobench.__file__).parent, site_packages):
        assert str(path).encode() not in data, path


def test_predict_and_export_through_the_cli(trained_run, onnx_model, real_patches, tmp_path, cli) -> None:
    folder, _ = real_patches
    code, _, err = cli("predict", trained_run, folder, "--out", tmp_path / "torch.csv")
    assert code == 0, err
    code, _, err = cli("predict", onnx_model, folder, "--out", tmp_path / "onnx.csv")
    assert code == 0, err
    a, b = (pd.read_csv(tmp_path / f) for f in ("torch.csv", "onnx.csv"))
    assert list(a.columns) == list(b.columns) and (a["label"] == b["label"]).all()
    assert np.abs(a["probability"] - b["probability"]).max() < 1e-4
    (tmp_path / "e.onnx").write_bytes(b"earlier")  # `--format onnx` reaches export's checks
    code, _, err = cli("export", trained_run, "--format", "onnx", "--out", tmp_path / "e.onnx")
    assert code == 2 and "e.onnx exists" in err, err


def test_an_onnx_model_without_its_settings_is_one_clear_message(
    onnx_model, real_patches, tmp_path, cli
) -> None:
    lone = tmp_path / "lone.onnx"
    shutil.copy(onnx_model, lone)
    folder, _ = real_patches
    code, _, err = cli("predict", lone, folder, "--out", tmp_path / "p.csv")
    assert code == 2 and "lone.onnx.json" in err and "--format onnx" in err and "Traceback" not in err, err


def test_models_info_says_what_a_trained_model_is(trained_run, onnx_model, tmp_path, cli) -> None:
    """`models info` on a run, its bundle and its ONNX export: the same model, threshold and
    test-set figures (the run's metrics.json, read independently), and each file's fingerprint."""
    import json

    from mitobench.inference.bundle import model_fingerprint

    bundle = tmp_path / "m.safetensors"
    assert cli("export", trained_run, "--out", bundle)[0] == 0
    summary = json.loads((trained_run / "metrics.json").read_text())["sets"]["atnorm-md/test"]
    infos = []
    for target in (trained_run, bundle, onnx_model):
        code, out, err = cli("models", "info", target, "--json")
        assert code == 0, err
        info = json.loads(out)
        assert info["sha256"] == model_fingerprint(Path(target))
        assert (info["model"], info["mode"], info["folds"]) == ("tf_efficientnet_lite0", "e2e", [0, 1])
        figures = info["figures"]["atnorm-md/test"]
        assert figures["ensemble"]["balanced_accuracy"] == pytest.approx(
            summary["ensemble"]["balanced_accuracy"]
        )
        assert figures["fold_mean"]["auroc"] == pytest.approx(summary["summary"]["auroc"]["mean"])
        assert figures["n"] == 8 and figures["folds"] == 2 and info["patch"]["size"] == 128
        infos.append(info)
    assert (
        infos[0]["threshold"] == pytest.approx(infos[1]["threshold"]) == pytest.approx(infos[2]["threshold"])
    )
    code, out, _ = cli("models", "info", bundle)
    assert code == 0 and "atnorm-md/test (8 figures, 2 folds, ensemble): bal. acc" in out
    code, _, err = cli("models", "info", tmp_path / "nothing.safetensors")
    assert code == 2 and "no such run directory or bundle" in err and "Traceback" not in err
