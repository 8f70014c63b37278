"""Each mode trains for real on a small separable dataset: e2e (small CNN), probe, LoRA (tiny ViT)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from mitobench.runs.spec import RunSpec, parse_spec
from mitobench.train.run import train_run

FAST = {"input_size": 32, "batch_size": 16, "eval_batch_size": 64, "precision": "fp32"}


def _e2e_spec(**train: object) -> RunSpec:
    return parse_spec(
        {
            "model": "resnet10t",
            "mode": "e2e",
            "preset": "cpu",
            "folds": [0],
            "train": {**FAST, "max_epochs": 4, "lr": 3e-3, "warmup_epochs": 0, **train},
        }
    )


def test_e2e_learns_a_separable_set(separable_root: Path, tmp_path: Path) -> None:
    result = train_run(_e2e_spec(), tmp_path / "run", separable_root, pretrained=False)
    fit = json.loads((tmp_path / "run" / "fold_0" / "fit.json").read_text())
    losses = [h["loss"] for h in fit["history"]]
    assert losses[-1] < losses[0]
    sets = result.summary["sets"]
    assert set(sets) == {"amibr/test", "amibr/val", "atnorm-br/test", "atnorm-md/test"}
    assert sets["amibr/test"]["summary"]["balanced_accuracy"]["mean"] > 0.8
    assert sets["atnorm-md/test"]["summary"]["balanced_accuracy"]["mean"] > 0.8
    preds = (tmp_path / "run" / "fold_0" / "predictions" / "amibr__test.csv").read_text().splitlines()
    # group: the slide; the experts' votes and subtypes travel with the predictions (raters, report)
    assert (
        preds[0].startswith("id,label,prob,group,vote_1,vote_2,vote_3,subtype_1") and len(preds) == 3 * 12 + 1
    )


@pytest.mark.parametrize("extra", [{}, {"mixup_alpha": 0.4}], ids=["plain", "mixup"])
def test_resumed_run_ends_identical(separable_root: Path, tmp_path: Path, extra: dict) -> None:
    spec = _e2e_spec(max_epochs=3, **extra)
    train_run(spec, tmp_path / "whole", separable_root, pretrained=False)
    partial = train_run(spec, tmp_path / "resumed", separable_root, pretrained=False, stop_after_epochs=1)
    assert partial.trained_folds == [] and (tmp_path / "resumed" / "fold_0" / "last.pt").is_file()
    train_run(spec, tmp_path / "resumed", separable_root, pretrained=False)  # resumes at epoch 2
    a = load_file(str(tmp_path / "whole" / "fold_0" / "best.safetensors"))
    b = load_file(str(tmp_path / "resumed" / "fold_0" / "best.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    pa = (tmp_path / "whole" / "fold_0" / "predictions" / "amibr__test.csv").read_text()
    pb = (tmp_path / "resumed" / "fold_0" / "predictions" / "amibr__test.csv").read_text()
    assert pa == pb


def test_finished_folds_are_not_retrained(separable_root: Path, tmp_path: Path) -> None:
    spec = _e2e_spec(max_epochs=1)
    train_run(spec, tmp_path / "run", separable_root, pretrained=False)
    again = train_run(spec, tmp_path / "run", separable_root, pretrained=False)
    assert again.trained_folds == []


def test_a_different_run_in_the_same_directory_is_refused(separable_root: Path, tmp_path: Path) -> None:
    from mitobench.errors import ConfigError

    train_run(_e2e_spec(max_epochs=1), tmp_path / "run", separable_root, pretrained=False)
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(max_epochs: 1 -> 2\)"):
        train_run(_e2e_spec(max_epochs=2), tmp_path / "run", separable_root, pretrained=False)


def test_a_run_made_before_a_setting_existed_resumes_at_its_default(
    separable_root: Path, tmp_path: Path
) -> None:
    """A run.json written before `all_figures` (or any later setting) existed still resumes; the
    same setting at another value is still refused."""
    from mitobench.errors import ConfigError
    from mitobench.runs.spec import parse_spec

    run = tmp_path / "run"
    spec = _e2e_spec(max_epochs=2)
    train_run(spec, run, separable_root, pretrained=False, stop_after_epochs=1)
    record = json.loads((run / "run.json").read_text())
    del record["spec"]["all_figures"]  # as an older mitobench wrote it
    (run / "run.json").write_text(json.dumps(record))
    assert train_run(spec, run, separable_root, pretrained=False).trained_folds == [0]
    other = parse_spec(
        {**spec.model_dump(), "all_figures": True, "train": {**spec.train, "threshold": "fixed"}}
    )
    with pytest.raises(ConfigError, match=r"other settings \(all_figures: \(unset\) -> True"):
        train_run(other, tmp_path / "run", separable_root, pretrained=False)


def test_a_run_records_its_folds_and_refuses_to_resume_on_other_folds(
    separable_root: Path, tmp_path: Path
) -> None:
    import sklearn

    from mitobench.errors import ConfigError

    run = tmp_path / "run"
    spec = _e2e_spec(max_epochs=2)
    train_run(spec, run, separable_root, pretrained=False, stop_after_epochs=1)
    record = json.loads((run / "run.json").read_text())
    assert record["folds"]["split"] == "paper" and record["folds"]["sklearn"] == sklearn.__version__
    assert len(record["folds"]["sha256"]) == 64
    # as if the run had been started where scikit-learn split differently
    record["folds"].update(sha256="0" * 64, sklearn="1.9.0")
    (run / "run.json").write_text(json.dumps(record))
    with pytest.raises(ConfigError, match="trained on other folds"):
        train_run(spec, run, separable_root, pretrained=False)
    other = spec.model_copy(update={"split": "sklearn"})
    with pytest.raises(ConfigError, match="split: paper -> sklearn"):
        train_run(other, run, separable_root, pretrained=False)


def test_finished_folds_carry_their_fold_fingerprint(separable_root: Path, tmp_path: Path) -> None:
    train_run(_e2e_spec(max_epochs=1), tmp_path / "run", separable_root, pretrained=False)
    done = json.loads((tmp_path / "run" / "fold_0" / "done.json").read_text())
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert done["folds_sha256"] == record["folds"]["sha256"]


@pytest.mark.parametrize("method", ["torch", "sklearn"])
def test_probe_reuses_cached_embeddings(separable_root: Path, tmp_path: Path, method: str) -> None:
    spec = parse_spec(
        {
            "model": "tf_efficientnet_lite0",
            "mode": "probe",
            "preset": "paper",
            "folds": [0, 1],
            # the paper's probe rate (5e-5) is too slow for 30 epochs on this small set
            "train": {
                "input_size": 64,
                "max_epochs": 30,
                "early_stopping_patience": 10,
                "batch_size": 16,
                "lr": 1e-3,
            },
            "probe": {"method": method},
        }
    )
    first = train_run(spec, tmp_path / "a", separable_root)
    assert first.embedding_cache == {"hits": 0, "misses": 4}  # train + three test sets, once for two folds
    second = train_run(spec, tmp_path / "b", separable_root)
    assert second.embedding_cache == {"hits": 4, "misses": 0}
    bacc = first.summary["sets"]["amibr/test"]["summary"]["balanced_accuracy"]["mean"]
    assert bacc > 0.8


def test_lora_trains_adapters_and_head_only(separable_root: Path, tmp_path: Path) -> None:
    from mitobench.models.builder import build
    from mitobench.train.modes import ModeOptions, get_mode

    tiny = {"img_size": 32, "patch_size": 8, "depth": 2, "embed_dim": 64, "num_heads": 2}
    encoder = build("vit_tiny_patch16_224", pretrained=False, overrides=tiny)
    model = get_mode("lora").classifier(encoder, ModeOptions())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n.startswith("head.") for n in trainable)
    assert any(".qkv.lora_A" in n for n in trainable) and any(".fc2.lora_B" in n for n in trainable)

    spec = parse_spec(
        {
            "model": "vit_tiny_patch16_224",
            "mode": "lora",
            "preset": "cpu",
            "folds": [0],
            "train": {**FAST, "max_epochs": 6, "lr": 3e-3},
        }
    )
    result = train_run(spec, tmp_path / "lora", separable_root, pretrained=False, model_overrides=tiny)
    saved = load_file(str(tmp_path / "lora" / "fold_0" / "best.safetensors"))
    assert set(saved) == trainable
    assert result.summary["sets"]["amibr/test"]["summary"]["auroc"]["mean"] > 0.8


def test_nan_loss_is_a_clear_error(
    separable_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mitobench.train import loop

    real = loop.binary_loss
    monkeypatch.setattr(loop, "binary_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    with pytest.raises(loop.TrainingDiverged, match="loss became nan at epoch 1, step 1"):
        train_run(_e2e_spec(), tmp_path / "nan", separable_root, pretrained=False)


def test_seeded_runs_are_reproducible(separable_root: Path, tmp_path: Path) -> None:
    spec = _e2e_spec(max_epochs=1)
    train_run(spec, tmp_path / "x", separable_root, pretrained=False)
    train_run(spec, tmp_path / "y", separable_root, pretrained=False)
    px = np.loadtxt(
        tmp_path / "x" / "fold_0" / "predictions" / "amibr__test.csv", delimiter=",", skiprows=1, usecols=2
    )
    py = np.loadtxt(
        tmp_path / "y" / "fold_0" / "predictions" / "amibr__test.csv", delimiter=",", skiprows=1, usecols=2
    )
    np.testing.assert_array_equal(px, py)


@pytest.mark.parametrize(("drop_last", "sizes"), [(False, [8, 8, 5]), (True, [8, 8])])
def test_each_epoch_runs_the_final_partial_batch_unless_dropped(
    tmp_path: Path, drop_last: bool, sizes: list[int]
) -> None:
    from mitobench.recipes.config import train_config
    from mitobench.runs.rundir import FoldDir
    from mitobench.train.batches import EmbeddingBatches
    from mitobench.train.loop import FitContext, fit
    from mitobench.train.model import Classifier

    seen: list[int] = []

    class Recording(EmbeddingBatches):
        def get(self, idx, g=None, dihedral_code=None):
            if g is not None:
                seen.append(len(idx))
            return super().get(idx, g, dihedral_code)

    rng = np.random.default_rng(0)
    train = Recording(rng.normal(size=(21, 4)).astype(np.float32), np.arange(21) % 2)
    val = EmbeddingBatches(rng.normal(size=(6, 4)).astype(np.float32), np.arange(6) % 2)
    cfg = train_config("probe", "paper", {"max_epochs": 1, "drop_last": drop_last})
    fit(Classifier(None, 4), FitContext(train, val, cfg, FoldDir(tmp_path, 0), torch.device("cpu")))
    assert seen == sizes


def _probe_fit(tmp_path: Path, targets: np.ndarray | None = None, stop: int | None = None, **settings):
    from mitobench.recipes.config import train_config
    from mitobench.runs.rundir import FoldDir
    from mitobench.train.batches import EmbeddingBatches
    from mitobench.train.loop import FitContext, fit
    from mitobench.train.model import Classifier

    rng = np.random.default_rng(0)
    labels = np.arange(64) % 2
    x = (rng.normal(size=(64, 4)) + labels[:, None]).astype(np.float32)
    train = EmbeddingBatches(x, labels, targets=targets)
    val = EmbeddingBatches(x[:16], labels[:16])
    cfg = train_config("probe", "cpu", {"max_epochs": 6, "batch_size": 16, "lr": 0.05, **settings})
    torch.manual_seed(0)
    model = Classifier(None, 4)
    ctx = FitContext(train, val, cfg, FoldDir(tmp_path, 0), torch.device("cpu"), stop_after_epochs=stop)
    result = fit(model, ctx)
    return model, result


def test_soft_targets_are_what_the_loss_sees(tmp_path: Path) -> None:
    undecided, _ = _probe_fit(tmp_path / "a", targets=np.full(64, 0.5, np.float32))
    decided, _ = _probe_fit(tmp_path / "b")
    x = torch.randn(32, 4) + 0.5
    with torch.no_grad():
        assert torch.sigmoid(undecided(x)).sub(0.5).abs().max() < 0.1  # taught "experts split evenly"
        assert torch.sigmoid(decided(x)).sub(0.5).abs().max() > 0.2


def test_the_weight_average_is_what_a_fold_keeps_and_resumes(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from mitobench.train.model import trainable_state

    model, _ = _probe_fit(tmp_path / "ema", ema_decay=0.9)
    kept = load_file(str(tmp_path / "ema" / "best.safetensors"))
    _probe_fit(tmp_path / "raw")
    assert not torch.equal(
        kept["head.weight"], load_file(str(tmp_path / "raw" / "best.safetensors"))["head.weight"]
    )
    torch.testing.assert_close(trainable_state(model)["head.weight"], kept["head.weight"])
    _probe_fit(tmp_path / "resumed", ema_decay=0.9, stop=2)
    _probe_fit(tmp_path / "resumed", ema_decay=0.9)
    again = load_file(str(tmp_path / "resumed" / "best.safetensors"))
    torch.testing.assert_close(again["head.weight"], kept["head.weight"], rtol=0, atol=0)


def test_soft_labels_need_votes(separable_root: Path, tmp_path: Path) -> None:
    from mitobench.errors import ConfigError

    csv = tmp_path / "novotes.csv"
    meta = pd.read_csv(separable_root / "amibr_train_split.csv")
    paths = [
        f"{separable_root}/AMi-Br/{c}/{u}"
        for c, u in zip(meta["final_label"], meta["dataset_uid"], strict=True)
    ]
    table = pd.DataFrame({"path": paths, "label": meta["final_label"], "group": meta["slide"]})
    table.to_csv(csv, index=False)
    spec = _e2e_spec(max_epochs=1, soft_labels=True).model_copy(
        update={"train_data": str(csv), "eval_sets": []}
    )
    with pytest.raises(ConfigError, match="soft_labels needs expert votes"):
        train_run(spec, tmp_path / "run", separable_root, pretrained=False)
    train_run(_e2e_spec(max_epochs=1, soft_labels=True), tmp_path / "amibr", separable_root, pretrained=False)


def test_each_fold_model_starts_from_the_recipes_head(
    separable_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`head_init` reaches the head every fold trains (the paper's UNI/UNI2-h/Prov-GigaPath LoRA)."""
    from mitobench.train import run as run_mod
    from mitobench.train.model import init_head

    heads: list[tuple[str, float, int]] = []

    def spy(head: torch.nn.Linear, how: str) -> None:
        init_head(head, how)
        heads.append((how, float(head.weight.detach().std()), int(torch.count_nonzero(head.bias))))

    monkeypatch.setattr(run_mod, "init_head", spy)
    spec = _e2e_spec(max_epochs=1, head_init="timm")
    train_run(spec, tmp_path / "run", separable_root, pretrained=False, stop_after_epochs=0)
    assert [h[0] for h in heads] == ["timm"] and heads[0][2] == 0
    assert abs(heads[0][1] - 0.02) < 0.005


def test_test_sets_are_scored_in_the_test_precision_and_validation_is_not(
    separable_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`test_precision` (the paper's fp16 scoring of some notebooks) reaches the test sets only."""
    from mitobench.train import run as run_mod

    scored: list[tuple[str, str, bool]] = []
    real = run_mod.predict_probs

    def spy(model, batches, cfg, dev, **kw):
        scored.append((kw["description"], cfg.eval_precision, cfg.scores_heads_in_autocast))
        return real(model, batches, cfg, dev, **kw)

    monkeypatch.setattr(run_mod, "predict_probs", spy)
    train_run(
        _e2e_spec(max_epochs=1, test_precision="bf16"), tmp_path / "run", separable_root, pretrained=False
    )
    assert ("validating", "fp32", False) in scored
    tests = [s for s in scored if s[0].startswith("evaluating")]
    assert len(tests) == 3 and all(s[1:] == ("bf16", True) for s in tests)


def test_a_head_on_embeddings_is_scored_in_fp16_on_cuda_only_when_testing() -> None:
    """The UNI probe under `paper`: its head is validated in fp32 and tested under fp16 autocast on
    CUDA, as the upstream notebook; on a CPU the scripts' CUDA autocast is inert (fp32)."""
    from mitobench.recipes.config import train_config
    from mitobench.train.loop import _choice
    from mitobench.train.model import Classifier

    head, cfg = Classifier(None, 4), train_config("probe", "paper", model="uni")
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert _choice(head, cfg.for_testing(), cuda, inference=True).dtype == torch.float16
    assert _choice(head, cfg, cuda, inference=True).dtype is None  # validation: fp32
    assert _choice(head, cfg.for_testing(), cuda).dtype is None  # training: fp32
    assert _choice(head, cfg.for_testing(), cpu, inference=True).dtype is None
    fp32 = train_config("probe", "paper", {"test_precision": "fp32"}, model="uni").for_testing()
    assert _choice(head, fp32, cuda, inference=True).dtype is None  # the deliberate difference
