"""The shipped model: a finished run written as package data (fp16 bundle + ONNX form + record),
used by `predict`, `slide` and `midog` when no model is named, and described by `models info`.

The machinery is tested on a small trained run shipped into a temporary folder; the real
`amibr-lite0` files are tested where they are: size, dtype, fingerprints, both engines on real
patches and its recorded AMi-Br test figures reproduced from the images."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors import safe_open

from mitobench.inference import shipped as shipped_mod
from mitobench.inference.shipped import DEFAULT_MODEL, EngineChoice, resolve_model, ship_run

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def rounded_run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained run with every fold's weights rounded to fp16 by torch itself (not by the
    bundle code), kept in fp32 files: what an fp16 bundle must compute, exactly."""
    from safetensors.torch import load_file, save_file

    run = tmp_path_factory.mktemp("rounded") / "run"
    shutil.copytree(trained_run, run)
    for best in run.glob("fold_*/best.safetensors"):
        state = load_file(str(best))
        save_file({k: t.half().float() if t.is_floating_point() else t for k, t in state.items()}, str(best))
    return run


@pytest.fixture
def as_shipped(ship_folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The small run stands in for the package's shipped model."""
    monkeypatch.setattr(shipped_mod, "shipped_dir", lambda: ship_folder)
    return ship_folder


def test_the_bundle_keeps_fp16_weights_and_the_onnx_form_computes_the_same(
    ship_folder, trained_run, rounded_run, real_patches
) -> None:
    """The bundle changes nothing but the weights' rounding to fp16, and ONNX computes the same.

    Compared with the run rounded by torch, not with the fp32 run under a fixed bound: how far
    fp16 rounding moves a probability depends on the trained weights, which differ by processor
    (0.0066 on an AMX-BF16 Xeon, under 5e-3 elsewhere, both sides computed in fp32)."""
    from mitobench.inference.bundle import export_run, from_bundle
    from mitobench.inference.onnx import from_onnx
    from mitobench.inference.predictor import from_run

    bundle = ship_folder / f"{DEFAULT_MODEL}.safetensors"
    with safe_open(str(bundle), framework="pt") as fh:
        dtypes = {str(fh.get_tensor(k).dtype) for k in fh.keys()}  # noqa: SIM118
    assert "torch.float16" in dtypes and "torch.float32" not in dtypes
    full = ship_folder.parent / "fp32.safetensors"
    export_run(trained_run, full)
    assert bundle.stat().st_size < 0.55 * full.stat().st_size
    onnx = ship_folder / f"{DEFAULT_MODEL}.onnx"
    # optimised graph: no shape arithmetic left for ONNX Runtime to run per batch (2.5x slower)
    assert not {n.op_type for n in __import__("onnx").load(str(onnx)).graph.node} & {"Shape", "Expand"}

    images = np.stack(real_patches[1])
    half = from_bundle(bundle).fold_probs(images)
    via_onnx = from_onnx(onnx).fold_probs(images)
    trained = from_run(trained_run).fold_probs(images)
    rounded = from_run(rounded_run).fold_probs(images)
    for k in trained:
        assert np.abs(via_onnx[k] - half[k]).max() < 1e-4  # the bundle's fp16 values, fp32 arithmetic
        assert np.abs(half[k] - rounded[k]).max() < 1e-6  # fp16 rounding of the trained weights only
        assert np.abs(half[k] - trained[k]).max() > 0  # and the rounding is real


def test_the_record_names_both_files_fingerprints(ship_folder) -> None:
    from mitobench.inference.bundle import model_fingerprint

    record = json.loads((ship_folder / f"{DEFAULT_MODEL}.json").read_text())
    assert record["recipe"] == "a test run" and record["name"] == DEFAULT_MODEL
    assert record["bundle_sha256"] == model_fingerprint(ship_folder / f"{DEFAULT_MODEL}.safetensors")
    assert record["onnx_sha256"] == model_fingerprint(ship_folder / f"{DEFAULT_MODEL}.onnx")


def test_shipping_again_refuses_to_replace_it(ship_folder, trained_run) -> None:
    from mitobench.errors import ConfigError

    before = (ship_folder / f"{DEFAULT_MODEL}.json").read_text()
    with pytest.raises(ConfigError, match="exists"):
        ship_run(trained_run, DEFAULT_MODEL, {}, ship_folder)
    assert (ship_folder / f"{DEFAULT_MODEL}.json").read_text() == before


def test_predict_without_a_model_uses_the_shipped_one_in_either_engine(
    as_shipped, rounded_run, real_patches, tmp_path, cli
) -> None:
    folder, _ = real_patches
    code, out, err = cli("predict", folder, "--out", tmp_path / "auto.csv")
    assert code == 0, err
    assert "16 patches" in out
    code, _, err = cli("predict", folder, "--engine", "pytorch", "--out", tmp_path / "torch.csv")
    assert code == 0, err
    code, _, err = cli("predict", folder, "--model", rounded_run, "--out", tmp_path / "run.csv")
    assert code == 0, err
    auto, torch_, run = (pd.read_csv(tmp_path / f) for f in ("auto.csv", "torch.csv", "run.csv"))
    assert list(run.columns) == ["id", "probability", "label", "prob_fold_0", "prob_fold_1"]
    assert np.abs(auto["probability"] - torch_["probability"]).max() < 1e-4
    assert np.abs(torch_["probability"] - run["probability"]).max() < 1e-6  # the run's fp16-rounded weights
    # the old form, MODEL then INPUTS, still works
    code, _, err = cli("predict", DEFAULT_MODEL, folder, "--out", tmp_path / "old.csv")
    assert code == 0, err
    assert np.abs(pd.read_csv(tmp_path / "old.csv")["probability"] - auto["probability"]).max() < 1e-9


@pytest.mark.parametrize("engine", ["pytorch", "onnx"])
def test_the_real_shipped_model_writes_no_per_fold_column(real_patches, tmp_path, cli, engine) -> None:
    """One model: a `prob_fold_0` column would only repeat `probability`."""
    folder, _ = real_patches
    code, _, err = cli("predict", folder, "--engine", engine, "--out", tmp_path / "p.csv")
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "p.csv")
    assert list(frame.columns) == ["id", "probability", "label"] and len(frame) == 16
    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(folder / "00.png", one)
    code, out, err = cli("predict", one, "--engine", engine, "--out", tmp_path / "one.csv")
    assert code == 0 and "1 patch → " in out, err


@pytest.mark.parametrize(
    ("reduced", "dev", "raced", "expected"),
    [
        (False, "cpu", None, ".onnx"),  # PyTorch would compute in fp32: ONNX Runtime, no race
        (True, "cuda", None, ".safetensors"),  # a GPU: PyTorch, no race
        (True, "cpu", "pytorch", ".safetensors"),  # native bf16: the race decides
        (True, "cpu", "onnx", ".onnx"),
    ],
)
def test_auto_picks_onnx_runtime_where_pytorch_is_fp32_and_races_them_on_a_bf16_cpu(
    as_shipped, monkeypatch, reduced, dev, raced, expected
) -> None:
    from mitobench.inference import engine_race
    from mitobench.train import precision

    def race(ship):
        assert raced is not None, "raced where the rule decides"
        assert ship.name == DEFAULT_MODEL and ship.folder == as_shipped
        return raced

    monkeypatch.setattr(shipped_mod, "pytorch_reduced_precision", lambda: reduced)
    monkeypatch.setattr(precision, "device", lambda: __import__("torch").device(dev))
    monkeypatch.setattr(engine_race, "auto_engine", race)
    assert resolve_model(None).suffix == expected
    assert resolve_model(None, EngineChoice.pytorch).suffix == ".safetensors"
    assert resolve_model(None, EngineChoice.onnx).suffix == ".onnx"
    monkeypatch.setattr(shipped_mod, "onnx_runtime_installed", lambda: False)
    assert resolve_model(DEFAULT_MODEL).suffix == ".safetensors"


def test_reduced_precision_follows_the_hardware(monkeypatch) -> None:
    """The engine rule reads the same decision table as training and scoring (train/precision)."""
    from mitobench.train import precision

    for native, expected in ((True, True), (False, False)):
        hw = precision.Hardware("cpu", native, False, "a test CPU")
        monkeypatch.setattr(precision, "hardware", lambda dev, hw=hw: hw)
        monkeypatch.setattr(precision, "device", lambda: __import__("torch").device("cpu"))
        assert shipped_mod.pytorch_reduced_precision() is expected


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (
            ["--model", "amibr-lite9"],
            f"no such shipped model, run folder or bundle\n  fix: did you mean {DEFAULT_MODEL}?",
        ),
        (["--model", "RUN", "--engine", "onnx"], "--format onnx"),
        (["--model", "m.onnx", "--engine", "pytorch"], "ONNX Runtime only"),
        (["--model", DEFAULT_MODEL, "EXTRA"], "one input"),
    ],
)
def test_a_wrong_model_or_engine_is_one_message(
    as_shipped, trained_run, real_patches, tmp_path, cli, args, says
) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    args = [
        str(trained_run) if a == "RUN" else str(tmp_path / "m.onnx") if a == "m.onnx" else a for a in args
    ]
    if "EXTRA" in args:
        args = [str(real_patches[0]), *[a for a in args if a != "EXTRA"], str(real_patches[0])]
    else:
        args = [str(real_patches[0]), *args]
    code, _, err = cli("predict", *args, "--out", tmp_path / "p.csv")
    assert code == 2 and says in err and "Traceback" not in err, err
    assert not (tmp_path / "p.csv").exists()


def test_the_shipped_default_is_missing_is_one_message(tmp_path, real_patches, monkeypatch, cli) -> None:
    monkeypatch.setattr(shipped_mod, "shipped_dir", lambda: tmp_path / "none")
    code, _, err = cli("predict", real_patches[0], "--out", tmp_path / "p.csv")
    assert code == 2 and DEFAULT_MODEL in err and "--model" in err, err


def test_models_info_of_the_shipped_model_says_how_it_was_made(as_shipped, trained_run, cli) -> None:
    code, out, err = cli("models", "info", DEFAULT_MODEL, "--json")
    assert code == 0, err
    info = json.loads(out)
    record = json.loads((as_shipped / f"{DEFAULT_MODEL}.json").read_text())
    assert info["made"] == record and info["sha256"] == record["bundle_sha256"]
    assert info["onnx_sha256"] == record["onnx_sha256"]
    assert info["teacher"] == {"run": "results/x/runs/teachers", "sha256": "cd" * 32}  # as the record says
    summary = json.loads((trained_run / "metrics.json").read_text())["sets"]["atnorm-md/test"]
    assert info["figures"]["atnorm-md/test"]["ensemble"]["auroc"] == pytest.approx(
        summary["ensemble"]["auroc"]
    )
    code, text, err = cli("models", "info", DEFAULT_MODEL)
    assert code == 0, err
    assert "recipe: a test run" in text and "a test CPU" in text and "ab" * 32 in text
    assert "validation: folds 0, 1 AUROC 0.9123, 0.9001 (mean 0.9062), threshold 0.410 (test folds)" in text
    assert f"AUROC {summary['ensemble']['auroc']:.4f}" in text


def test_midog_without_a_model_uses_the_shipped_one(as_shipped, real_patches, tmp_path, cli) -> None:
    from PIL import Image

    from mitobench.inference.midog import RESULT, STACKS

    stack = tmp_path / "in" / STACKS / "case.tif"
    stack.parent.mkdir(parents=True)
    first, *rest = (Image.fromarray(p) for p in real_patches[1])
    first.save(stack, save_all=True, append_images=rest)
    code, _, err = cli("midog", "--input", tmp_path / "in", "--output", tmp_path / "out")
    assert code == 0, err
    result = json.loads((tmp_path / "out" / RESULT).read_text())
    code, _, err = cli("predict", real_patches[0], "--out", tmp_path / "p.csv")
    assert code == 0, err
    probs = pd.read_csv(tmp_path / "p.csv").sort_values("id")["probability"].to_numpy()
    assert np.abs(np.array([r["confidence"] for r in result]) - probs).max() < 1e-4


# ---- the real shipped model, where the package holds it

REAL = shipped_mod.shipped_dir() / f"{DEFAULT_MODEL}.safetensors"
needs_real = pytest.mark.skipif(not REAL.is_file(), reason="no shipped amibr-lite0 in this checkout")


@needs_real
def test_the_shipped_model_is_small_fp16_and_what_its_record_says() -> None:
    from mitobench.inference.bundle import model_fingerprint

    assert REAL.stat().st_size <= 10_000_000
    with safe_open(str(REAL), framework="pt") as fh:
        floats = {str(fh.get_tensor(k).dtype) for k in fh.keys() if fh.get_tensor(k).is_floating_point()}  # noqa: SIM118
    assert floats == {"torch.float16"}
    record = shipped_mod.ShippedModel(DEFAULT_MODEL, REAL.parent).record()
    assert record["bundle_sha256"] == model_fingerprint(REAL)
    assert record["onnx_sha256"] == model_fingerprint(REAL.with_suffix(".onnx"))
    # the threshold it calls at is the one chosen on held-out predictions, never on a test set
    from mitobench.inference.bundle import from_bundle

    assert from_bundle(REAL).threshold == pytest.approx(record["validation"]["threshold"], abs=1e-6)


@needs_real
def test_the_shipped_files_name_their_teacher_as_the_recipe_does_not_by_a_makers_path() -> None:
    """Record, bundle settings and ONNX sidecar: every `teacher` is the results-relative folder the
    recipe's command writes (what a user can reproduce), never the maker's absolute path."""
    from mitobench.inference.onnx import sidecar

    with safe_open(str(REAL), framework="pt") as fh:
        meta = json.loads(fh.metadata()["mitobench"])
    record = shipped_mod.ShippedModel(DEFAULT_MODEL, REAL.parent).record()
    side = json.loads(sidecar(REAL.with_suffix(".onnx")).read_text())
    names = [meta["teacher"]["run"], record["teacher"]["run"], side["teacher"]["run"]]
    for doc in (meta, side):
        names += [doc["run"]["train"]["teacher"], doc["train_config"]["teacher"]]
    names += [record["student_run"]["train"]["teacher"], record["train_config"]["teacher"]]
    names += [stage["teacher_run"] for stage in record["stages"]]
    assert len(set(names)) == 1, set(names)
    name = names[0]
    assert name.startswith("results/") and not Path(name).is_absolute()
    assert f"--results {name.split('/runs/')[0]} " in record["recipe"]  # the command that wrote it


@needs_real
def test_the_shipped_model_reproduces_its_amibr_test_figures_from_the_images(real_root) -> None:
    """Both engines agree within 1e-4 on AMi-Br test patches, and the figures the record holds for
    the shipped files (the model card's) come back from the images; the run's own figures (fp32
    weights, bf16 arithmetic where the training machine had it) are near them."""
    from mitobench.data.cache import ImageCache
    from mitobench.data.registry import load
    from mitobench.inference.bundle import describe_model, from_bundle
    from mitobench.inference.onnx import from_onnx
    from mitobench.metrics.binary import auroc, balanced_accuracy

    test = load("amibr/test", real_root)
    images = ImageCache().load(test)
    via_onnx = from_onnx(REAL.with_suffix(".onnx"))
    p_onnx = via_onnx.ensemble_probs(images)
    torch_model = from_bundle(REAL)
    torch_model.cfg = torch_model.cfg.model_copy(update={"precision": "fp32", "test_precision": "fp32"})
    p_torch = torch_model.ensemble_probs(images[:64])
    assert np.abs(p_onnx[:64] - p_torch).max() < 1e-4  # both fp32: the same weights, the same sums
    labels = test.labels
    calls = (p_onnx >= via_onnx.threshold).astype(int)
    record = shipped_mod.ShippedModel(DEFAULT_MODEL, REAL.parent).record()
    scored = record["shipped_files_scored"]["sets"]["amibr/test"]["onnx runtime fp32"]
    assert auroc(labels, p_onnx) == pytest.approx(scored["auroc"], abs=1e-4)
    # another CPU's rounding may flip one figure at the threshold: 1/184 atypical -> 0.0027
    assert balanced_accuracy(labels, calls) == pytest.approx(scored["balanced_accuracy"], abs=3e-3)
    run = describe_model(REAL)["figures"]["amibr/test"]["fold_mean"]
    assert auroc(labels, p_onnx) == pytest.approx(run["auroc"], abs=5e-3)
    assert balanced_accuracy(labels, calls) == pytest.approx(run["balanced_accuracy"], abs=0.015)


def test_models_info_of_an_unknown_name_names_the_nearest_known_ones(cli) -> None:
    """A mistyped shipped or registered name is one message with the near names, exit 2."""
    code, _, err = cli("models", "info", "amibr-lite")
    assert code == 2 and "Traceback" not in err, err
    assert "amibr-lite: no such registered model, shipped model" in err and "did you mean amibr-lite0" in err
    code, _, err = cli("models", "info", "tf_efficientnet_lite")
    assert code == 2 and "tf_efficientnet_lite0" in err, err
    code, _, err = cli("models", "info", "zzz")
    assert code == 2 and "did you mean" not in err and "mitobench models list" in err, err


@pytest.mark.parametrize(
    ("call", "kinds"),
    [("resolve_model", "shipped model, run folder or bundle"), ("require_shipped", "shipped model")],
)
def test_a_mistyped_shipped_name_gets_the_nearest_shipped_ones(tmp_path, monkeypatch, call, kinds) -> None:
    """`--model` of predict, slide and midog (`resolve_model`) and a tool that takes only a shipped
    name (`require_shipped`, the speed benchmark's --shipped) name the nearest shipped models, as
    `models info` does; a far name gets the list alone."""
    from mitobench.errors import ConfigError

    resolve = getattr(shipped_mod, call)
    monkeypatch.chdir(tmp_path)  # a bare name is a mistyped model only where no such file is
    with pytest.raises(ConfigError) as near:
        resolve("amibr-lite")
    assert f"amibr-lite: no such {kinds}\n" in str(near.value) + "\n"
    assert f"fix: did you mean {DEFAULT_MODEL}? shipped models: {DEFAULT_MODEL}" in str(near.value)
    with pytest.raises(ConfigError) as far:
        resolve("zzz")
    assert "did you mean" not in str(far.value) and f"fix: shipped models: {DEFAULT_MODEL}" in str(far.value)
    then = "; else pass a run folder" in str(far.value)
    assert then == (call == "resolve_model")


def test_require_shipped_returns_the_shipped_files() -> None:
    from mitobench.inference.shipped import require_shipped

    assert require_shipped(DEFAULT_MODEL).bundle.is_file()
