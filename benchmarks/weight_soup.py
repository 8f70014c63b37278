"""A uniform weight soup of one fold's models from several runs, against its members, on validation.

The runs are the same recipe trained with different seeds (e.g. `--set seed=1042`). For fold K, on
that fold's validation figures (never a test set), it prints the validation AUROC of each member
(recomputed from its weights, beside the one its run stored), the members' mean, their probability
ensemble (the mean of their probabilities: what a soup would stand in for), and the soup: the mean
of their weights and of their batch-norm statistics and, for comparison, the same weights with the
statistics recomputed on the fold's training figures (`torch.optim.swa_utils.update_bn`, no
augmentation; on the shipped recipe's students that alone cost 0.007, docs/recipes.md). A soup
costs one model's forward pass; the ensemble costs one per member.

Usage: python benchmarks/weight_soup.py --fold 0 results/s42 results/s1042-01 results/s2042-01 \
           --data-root ../shared/data [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mitobench.benchmark.distil import pooled_validation
from mitobench.data.cache import ImageCache
from mitobench.data.registry import load
from mitobench.errors import ConfigError, MitobenchError
from mitobench.inference.predictor import Predictor, from_run
from mitobench.metrics.binary import auroc
from mitobench.runs.rundir import RunDir
from mitobench.train.batches import ImageBatches
from mitobench.train.model import load_trainable_state, trainable_state
from mitobench.train.precision import device
from mitobench.train.run import environment

RECIPE_KEYS = ("model", "mode", "preset", "train_data", "weights")


def uniform_soup(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The mean of state dicts with the same keys and shapes; integer buffers (batch counters)
    are taken from the first, as they have no meaningful mean."""
    keys = set(states[0])
    if any(set(s) != keys for s in states[1:]):
        raise ValueError("the models' state dicts have different keys: not one architecture")
    soup = {}
    for k, first in states[0].items():
        if first.is_floating_point():
            soup[k] = torch.stack([s[k].float() for s in states]).mean(0).to(first.dtype)
        else:
            soup[k] = first.clone()
    return soup


def recompute_bn(predictor: Predictor, images: np.ndarray, batch: int = 64) -> None:
    """Batch-norm running statistics of the predictor's loaded model, recomputed in fp32 as the
    cumulative mean over `images` (unaugmented, as the network sees them at inference)."""
    dev = device()
    model = predictor.model.to(dev)
    enc = model.encoder
    assert enc is not None
    data = ImageBatches(images, np.zeros(len(images), dtype=np.int64), enc, [], False, dev)
    batches = (data.get(np.arange(i, min(i + batch, len(images)))) for i in range(0, len(images), batch))
    with torch.no_grad():
        torch.optim.swa_utils.update_bn(batches, model, device=dev)
    model.eval()


def _validation(run: Path, fold: int) -> pd.DataFrame:
    """The fold's validation predictions, sorted by id (the images are loaded in that order)."""
    frame = pooled_validation(run, [fold], columns=("id", "label", "prob"))
    return frame.sort_values("id", ignore_index=True)


def _check_same_recipe(runs: list[Path]) -> None:
    """The members must differ in their seed only (same network, mode, preset, data, settings and
    teacher targets)."""

    def recipe(run: Path) -> dict:
        rundir = RunDir(run)
        if not rundir.record_file.is_file():
            raise ConfigError(f"{rundir.record_file} is missing", "pass run folders that mitobench made")
        record = rundir.read_record()
        spec = {k: record["spec"].get(k) for k in RECIPE_KEYS}
        train = {k: v for k, v in record["train_config"].items() if k != "seed"}
        return {"spec": spec, "train": train, "teacher": (record.get("teacher") or {}).get("sha256")}

    first = recipe(runs[0])
    for r in runs[1:]:
        if recipe(r) != first:
            raise ConfigError(
                f"{r}: not the same recipe as {runs[0]} (anything but the seed differs)",
                "pass runs of one recipe that differ in their seed only",
            )


def soup_fold(runs: list[Path], fold: int, data_root: Path) -> dict[str, object]:
    """Every figure of the comparison for one fold (see the module's docstring)."""
    vals = [_validation(r, fold) for r in runs]
    ids = vals[0]["id"]
    if any(not v["id"].equals(ids) for v in vals[1:]):
        raise ConfigError(
            f"fold {fold}: the runs' validation figures differ", "pass runs trained on the same folds"
        )
    y = vals[0]["label"].to_numpy()
    train = load("amibr/train", data_root)
    is_val = train.frame["id"].isin(set(ids)).to_numpy()
    if is_val.sum() != len(ids):
        raise ConfigError(
            f"{data_root}: amibr/train lacks some of fold {fold}'s validation figures",
            "pass the data root the runs were trained on",
        )
    cache = ImageCache()
    val_set = train.subset(np.flatnonzero(is_val))
    order = val_set.frame["id"].argsort().to_numpy()  # the prediction files are sorted by id
    val_images = cache.load(val_set)[order]
    train_images = cache.load(train.subset(np.flatnonzero(~is_val)))
    predictors = [from_run(r, folds=[fold]) for r in runs]
    members = [p.fold_probs(val_images)[fold] for p in predictors]
    rows: dict[str, object] = {
        "fold": fold,
        "n_val": len(ids),
        "members": [
            {
                "run": str(r),
                "auroc": auroc(y, p),
                "stored_auroc": auroc(y, v["prob"].to_numpy()),
                "max_abs_diff_vs_stored": float(np.abs(p - v["prob"].to_numpy()).max()),
            }
            for r, p, v in zip(runs, members, vals, strict=True)
        ],
    }
    rows["members_mean"] = float(np.mean([m["auroc"] for m in rows["members"]]))  # type: ignore[index]
    rows["ensemble"] = auroc(y, np.mean(members, axis=0))
    soup = uniform_soup([p.fold_states[fold] for p in predictors])
    host = predictors[0]
    host.fold_states = {fold: soup}
    rows["soup"] = auroc(y, host.fold_probs(val_images)[fold])
    load_trainable_state(host.model, soup)
    recompute_bn(host, train_images)
    host.fold_states = {fold: trainable_state(host.model)}
    rows["soup_recomputed_bn"] = auroc(y, host.fold_probs(val_images)[fold])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run folders of one recipe, one seed each")
    parser.add_argument("--fold", type=int, required=True, help="the fold whose models are souped")
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    if len(args.runs) < 2:
        parser.error("give two runs or more: a soup of one model is that model")
    if args.json and args.json.exists():
        parser.error(f"{args.json} exists: pass another --json path (results are never overwritten)")
    for run in args.runs:
        if args.fold not in RunDir(run).finished_folds():
            parser.error(f"{run}: fold {args.fold} is not finished (pass run folders that trained it)")
    try:
        _check_same_recipe(args.runs)
        rows = soup_fold(args.runs, args.fold, args.data_root)
    except MitobenchError as exc:
        parser.error(str(exc))
    rows["processor"] = environment()["cpu_label"]
    print(f"\nfold {args.fold}, {rows['n_val']} validation figures: validation AUROC\n")
    print("| model | AUROC | stored | max abs diff |\n|---|---:|---:|---:|")
    for m in rows["members"]:  # type: ignore[attr-defined]
        diff = m["max_abs_diff_vs_stored"]
        print(f"| {m['run']} | {m['auroc']:.4f} | {m['stored_auroc']:.4f} | {diff:.1e} |")
    for name in ("members_mean", "ensemble", "soup", "soup_recomputed_bn"):
        print(f"| {name} | {rows[name]:.4f} | | |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
