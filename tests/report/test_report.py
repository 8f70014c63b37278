"""`mitobench report`: tables with CIs and paper figures, plots, and an HTML page checked in Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mitobench.report.build import build_report
from tests.conftest import REPO


@pytest.fixture
def results(tiny_results: tuple[Path, Path]) -> tuple[Path, Path]:
    return tiny_results


def test_tables_have_ci_ensemble_and_paper_columns(results: tuple[Path, Path]) -> None:
    out, root = results
    paths = build_report(out, root, n_boot=200)
    table = pd.read_csv(paths["csv"])
    assert set(table["dataset"]) == {"amibr/test", "atnorm-md/test"}  # atnorm-br absent, val left out
    row = table[table["dataset"] == "amibr/test"].iloc[0]
    assert row["folds"] == 2 and row["ci_resampling"] == "slides"
    assert row["bacc_ci_low"] <= row["bacc_mean"] <= row["bacc_ci_high"]
    assert 0 <= row["ensemble_bacc"] <= 1
    md = paths["md"].read_text()
    assert "resnet10t" in md and "± " in md and "Δ vs paper" in md
    assert md.startswith("Trained on: ") and "native bf16" in md and "(2 jobs)" in md
    assert "\\begin{tabular}" in paths["tex"].read_text()
    plots = {p.name for p in (out / "report" / "plots").iterdir()}
    assert {
        "balanced_accuracy.png",
        "balanced_accuracy.svg",
        "roc_amibr_test.png",
        "confusion_amibr_test.png",
        "reliability_atnorm-md_test.png",
    } <= plots


def test_one_fold_has_no_spread_instead_of_zero() -> None:
    from mitobench.report.summary import summary_rows
    from mitobench.report.tables import _pm

    entry = {"mean": 0.8, "std": 0.0}
    one = {
        "sets": {
            "amibr/test": {
                "n": 3,
                "per_fold": {"0": {}},
                "summary": {"balanced_accuracy": entry, "auroc": entry},
            }
        }
    }
    assert summary_rows(one)[0]["balanced_accuracy"] == "0.8000 (1 fold, no SD)"
    two = {
        "sets": {
            "amibr/test": {
                "n": 3,
                "per_fold": {"0": {}, "1": {}},
                "summary": {"balanced_accuracy": entry, "auroc": entry},
            }
        }
    }
    assert summary_rows(two)[0]["balanced_accuracy"] == "0.8000 ± 0.0000"
    assert _pm(0.8, float("nan")) == "0.8000 (1 fold, no SD)" and _pm(0.8, 0.01) == "0.8000 ± 0.0100"


def test_published_figures_sit_beside_ours() -> None:
    from mitobench.report.published import published

    p = published()
    row = p[(p["model"] == "efficientnetv2_m") & (p["dataset"] == "amibr/test")].iloc[0]
    assert row["paper_bacc_mean"] == 0.7474 and row["mode"] == "e2e"
    assert len(p) == 51 and not p.isna().any().any()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_in_headless_chromium(results: tuple[Path, Path], tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine (CI installs Debian's chromium)")
    out, root = results
    html = build_report(out, root, n_boot=100)["html"]
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = run.stdout
    assert "<h1>mitobench report" in dom, run.stderr[-1000:]
    assert dom.count("<table") >= 3  # results, rater agreement
    assert re.search(r"<td>resnet10t</td>", dom)
    assert dom.count('class="tile"') > 0  # the gallery shows misclassified patches
    assert "Fleiss' κ" in dom and "votes:" in dom
    images = re.findall(r"<img [^>]*src=\"([^\"]*)\"", dom)
    assert len(images) > 5 and all(src.startswith("data:image/png;base64,") for src in images)


def test_report_without_results_is_a_user_error(tmp_path: Path, cli) -> None:
    code, _, err = cli("report", tmp_path)
    assert code == 2 and "holds no results store" in err


def test_raters_on_a_folder_without_a_store_leaves_it_untouched(tmp_path: Path, real_root: Path, cli) -> None:
    """A mistyped --results is one message; it used to create the folder and an empty store."""
    typo = tmp_path / "resluts"
    code, _, err = cli("raters", "--results", typo, "--data-root", real_root)
    assert code == 2 and "Traceback" not in err and f"{typo} holds no results store" in err, err
    assert not typo.exists()


def _fold_frames(
    preset: str, n_folds: int = 5, train_data: str = "amibr/train"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions and per-fold metrics (as the store keeps them) of an efficientnetv2_m run on a
    small 'amibr/test'."""
    from mitobench.metrics.binary import compute

    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    preds, metrics = [], []
    run = {"model": "efficientnetv2_m", "mode": "e2e", "preset": preset, "train_data": train_data}
    for fold in range(n_folds):
        probs = np.clip(labels * 0.3 + rng.uniform(0, 0.7, 40), 0, 1)
        preds += [
            {**run, "fold": fold, "dataset": "amibr/test", "sample": f"s{i}", "label": int(y), "prob": p,
             "prob_tta": None}
            for i, (y, p) in enumerate(zip(labels, probs, strict=True))
        ]  # fmt: skip
        metrics += [
            {**run, "fold": fold, "dataset": "amibr/test", "variant": "fold", "metric": name, "value": value}
            for name, value in compute(labels, probs, 0.5).items()
        ]
    return pd.DataFrame(preds), pd.DataFrame(metrics)


def test_published_figures_only_beside_paper_runs_with_the_papers_spread() -> None:
    from mitobench.report.tables import display_table, results_table

    frames = [_fold_frames(p) for p in ("paper", "cpu")]
    preds = pd.concat([f[0] for f in frames])
    metrics = pd.concat([f[1] for f in frames])
    other = results_table(*_fold_frames("paper", train_data="lab.csv"), n_boot=0).iloc[0]
    assert pd.isna(other["paper_bacc_mean"])  # trained on other data: the paper's figure does not apply
    table = results_table(preds, metrics, n_boot=0).set_index("preset")
    assert table.loc["paper", "paper_bacc_mean"] == 0.7474
    assert pd.isna(table.loc["cpu", "paper_bacc_mean"]) and pd.isna(table.loc["cpu", "delta_bacc"])
    shown = display_table(table.reset_index()).set_index("preset")
    paper, cpu = table.loc["paper"], table.loc["cpu"]
    assert shown.loc["paper", "± is"] == "SD, ddof 0 (as paper)"
    assert shown.loc["paper", "bal. acc (mean ± SD)"].endswith(f"± {paper['bacc_std_pop']:.4f}")
    assert shown.loc["cpu", "bal. acc (mean ± SD)"].endswith(f"± {cpu['bacc_std']:.4f}")
    assert shown.loc["cpu", "paper bal. acc (± ddof 0)"] == "–"
    assert paper["bacc_std_pop"] < paper["bacc_std"]


def test_per_fold_comparison_only_for_jobs_on_the_papers_folds() -> None:
    from mitobench.data.splits import PAPER_FOLDS_SHA256
    from mitobench.metrics.binary import compute
    from mitobench.report.published import published_per_fold
    from mitobench.report.tables import per_fold_table

    preds, thresholds = _fold_frames("paper")
    rows = []
    for fold, part in preds.groupby("fold"):
        m = compute(part["label"].to_numpy(), part["prob"].to_numpy(), 0.5)
        for name in ("balanced_accuracy", "auroc"):
            rows.append({**thresholds.iloc[0].to_dict(), "fold": fold, "metric": name, "value": m[name]})
    metrics = pd.DataFrame(rows)
    sha = pd.DataFrame(
        {"model": "efficientnetv2_m", "mode": "e2e", "preset": "paper", "train_data": "amibr/train",
         "fold": range(5),
         "folds_sha256": [PAPER_FOLDS_SHA256] * 4 + ["other"]}
    )  # fmt: skip
    table = per_fold_table(metrics, sha, PAPER_FOLDS_SHA256)
    assert sorted(table["fold"]) == [0, 1, 2, 3]  # fold 4 trained on other folds: left out
    ref = (
        published_per_fold()
        .query("model == 'efficientnetv2_m' and dataset == 'amibr/test'")
        .set_index("fold")
    )
    for _, row in table.iterrows():
        assert row["paper_bacc"] == ref.loc[row["fold"], "paper_bacc"]
        assert row["delta_bacc"] == pytest.approx(row["bacc"] - row["paper_bacc"])
    assert per_fold_table(metrics.assign(preset="cpu"), sha.assign(preset="cpu"), PAPER_FOLDS_SHA256).empty


def test_models_among_the_experts_in_the_report_and_the_raters_command(
    results: tuple[Path, Path], cli
) -> None:
    out, root = results
    build_report(out, root, n_boot=50)
    assert (out / "report" / "plots" / "raters_atnorm-md_test.png").is_file()
    page = (out / "report" / "report.html").read_text()
    assert "By expert agreement" in page and "Spearman" in page
    code, text, err = cli("raters", "--data-root", root, "--results", out, "--bootstrap", "50")
    assert code == 0, err
    assert "by expert agreement" in text and "resnet10t · e2e · cpu" in text
    for level in ("3/3", "5/5", "4/5"):  # the fixture's experts split at most 4 to 1
        assert level in text


def test_the_papers_spread_is_the_population_sd_of_its_folds() -> None:
    """'ddof 0, as the paper' (report, README, docs/recipes.md): every published SD is np.std of
    the published per-fold figures with ddof 0 and not the sample SD — read from the shared files."""
    reference = REPO.parent / "shared" / "reference"
    if not (reference / "published_per_fold.csv").is_file():
        pytest.skip(f"published figures not found under {reference}")
    keys = ["model", "mode", "dataset"]
    summary = pd.read_csv(reference / "published_results.csv").set_index(keys)
    folds = pd.read_csv(reference / "published_per_fold.csv").groupby(keys)["balanced_accuracy"]
    compared = 0
    for key, values in folds:
        if key not in summary.index or len(values) < 2:
            continue
        published = summary.loc[key, "balanced_accuracy_std"]
        assert np.std(values, ddof=0) == pytest.approx(published, abs=6e-5), key  # 4-decimal rounding
        assert abs(np.std(values, ddof=1) - published) > 6e-5, key
        compared += 1
    assert compared >= 40


def test_a_reproduction_is_judged_by_both_sides_spread() -> None:
    """The reproduce_fold verdict: our folds' mean against the paper's mean ± SD (ddof 0), within
    two standard errors of the difference; one value borrows the paper's SD."""
    from mitobench.report.published import judge_reproduction

    reference = REPO.parent / "shared" / "reference"
    if not (reference / "published_results.csv").is_file():
        pytest.skip(f"published figures not found under {reference}")
    row = pd.read_csv(reference / "published_results.csv").set_index(["model", "mode", "dataset"])
    mean, sd = row.loc[
        ("EfficientNetV2-M", "end-to-end", "AMi-Br"), ["balanced_accuracy_mean", "balanced_accuracy_std"]
    ]
    ours = [mean - 0.01, mean + 0.004, mean - 0.002]
    tol = 2 * np.sqrt(np.std(ours) ** 2 / 3 + sd**2 / 5)
    close = judge_reproduction({"amibr/test": ours}, "efficientnetv2_m", "e2e").iloc[0]
    assert close["n"] == 3 and close["paper_mean"] == mean and close["paper_sd_ddof0"] == sd
    assert close["bacc_sd_ddof0"] == pytest.approx(np.std(ours))
    assert close["tolerance"] == pytest.approx(tol) and bool(close["reproduced"]) is True
    far = judge_reproduction({"amibr/test": [v - 0.05 for v in ours]}, "efficientnetv2_m", "e2e").iloc[0]
    assert bool(far["reproduced"]) is False and far["delta"] == pytest.approx(np.mean(ours) - 0.05 - mean)
    one = judge_reproduction({"amibr/test": [mean + 0.02]}, "efficientnetv2_m", "e2e").iloc[0]
    assert one["tolerance"] == pytest.approx(2 * np.sqrt(sd**2 + sd**2 / 5))
    assert judge_reproduction({"amibr/test": [0.7]}, "no_such_model", "e2e").empty


def _jobs(folds: range, train: dict | None = None, sha: str | None = None, **spec) -> pd.DataFrame:
    from mitobench.data.splits import PAPER_FOLDS_SHA256

    run = {"model": "efficientnetv2_m", "mode": "e2e", "preset": "paper", "train_data": "amibr/train"}
    body = json.dumps({"train": train or {}, **spec})
    return pd.DataFrame(
        [{**run, "fold": f, "spec": body, "folds_sha256": sha or PAPER_FOLDS_SHA256} for f in folds]
    )


@pytest.mark.parametrize(
    ("jobs", "note"),
    [
        (_jobs(range(5)), ""),
        (_jobs(range(5), train={"max_epochs": 3, "seed": 1}), "settings changed (max_epochs, seed)"),
        (_jobs(range(2)), "2 of the paper's 5 folds"),
        (_jobs(range(5), sha="another split"), "not the paper's folds"),
        (
            _jobs(range(5), lora={"r": 4, "alpha": 16, "dropout": 0.3, "targets": None}),
            "lora settings changed",
        ),
    ],
)
def test_the_published_figure_stands_only_beside_the_unchanged_protocol(
    jobs: pd.DataFrame, note: str
) -> None:
    """A `paper` run with overrides, fewer folds or other folds is not the paper's experiment:
    its published figure is withheld and the table says why."""
    from mitobench.data.splits import PAPER_FOLDS_SHA256
    from mitobench.report.tables import display_table, paper_conditions, results_table

    conditions = paper_conditions(jobs, PAPER_FOLDS_SHA256)
    assert conditions == {("efficientnetv2_m", "e2e", "paper", "amibr/train"): note}
    row = results_table(*_fold_frames("paper"), n_boot=0, conditions=conditions).iloc[0]
    shown = display_table(pd.DataFrame([row])).iloc[0]
    if note:
        assert pd.isna(row["paper_bacc_mean"]) and pd.isna(row["delta_bacc"])
        assert shown["paper bal. acc (± ddof 0)"] == f"not shown: {note}"
        assert shown["± is"] == "SD, ddof 1"
    else:
        assert row["paper_bacc_mean"] == 0.7474 and shown["± is"] == "SD, ddof 0 (as paper)"


def test_a_metric_registered_once_reaches_the_report_and_the_run_summary(
    results: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One entry in metrics' registry: a column with its CI in the report's tables, a column in a
    run's summary; neither the report nor the CLI names it."""
    from mitobench.metrics import binary
    from mitobench.report.summary import summary_headers, summary_rows

    def npv(labels, probs, calls) -> float:
        neg = calls == 0
        return float((labels[neg] == 0).mean()) if neg.any() else float("nan")

    monkeypatch.setitem(binary.REGISTRY, "npv", binary.Metric("npv", "NPV", npv, shown=True))
    out, root = results
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    build_report(copy, root, n_boot=20)
    table = pd.read_csv(copy / "report" / "tables.csv")
    assert {"npv_mean", "npv_std", "npv_ci_low", "npv_ci_high", "ensemble_npv"} <= set(table.columns)
    assert table["npv_mean"].between(0, 1).all() and (table["ci_seed"] == 0).all()
    assert "NPV (mean ± SD)" in (copy / "report" / "tables.md").read_text()
    assert summary_headers()["npv"] == "NPV (mean ± SD, ddof 1)"
    run_summary = {"sets": {"x/test": {"n": 3, "per_fold": [{}, {}], "summary": {
        "balanced_accuracy": {"mean": 0.5, "std": 0.1}, "auroc": {"mean": 0.6, "std": 0.1},
        "npv": {"mean": 0.75, "std": 0.05}}}}}  # fmt: skip
    assert summary_rows(run_summary)[0]["npv"] == "0.7500 ± 0.0500"


def test_the_report_is_built_from_the_store_alone_with_the_same_figures(
    results: tuple[Path, Path], tmp_path: Path
) -> None:
    """Slides travel with the predictions into results.sqlite: without the data root the CIs
    still resample whole slides, and every figure of the table is the same."""
    out, root = results
    with_data, without = tmp_path / "a", tmp_path / "b"
    shutil.copytree(out, with_data)
    shutil.copytree(out, without)
    build_report(with_data, root, n_boot=50)
    build_report(without, tmp_path / "no-data-here", n_boot=50)
    a = pd.read_csv(with_data / "report" / "tables.csv")
    b = pd.read_csv(without / "report" / "tables.csv")
    pd.testing.assert_frame_equal(a, b)
    amibr = a[a["dataset"] == "amibr/test"]
    assert (amibr["ci_resampling"] == "slides").all()
    pages = [(d / "report" / "report.html").read_text() for d in (with_data, without)]
    raters = [re.search(r"<h2 id='raters'>.*?(?=<h2|$)", page, re.S) for page in pages]
    assert raters[0] and raters[1] and raters[0].group(0) == raters[1].group(0)  # votes came from the store
    assert "truth: atypical" in pages[0] and "truth: " not in pages[1]  # the gallery needs the images
    assert "No gallery for: amibr/test, atnorm-md/test" in pages[1]


def test_the_votes_kept_in_the_store_are_the_datasets(results: tuple[Path, Path]) -> None:
    """The rater analysis from the store's copy of each voted set equals the one from the data
    root's own files (an independent read of the votes, slides and subtypes)."""
    from mitobench.benchmark.store import ResultsStore
    from mitobench.data.registry import load
    from mitobench.report.build import _ensemble_calls, rater_analysis, stored_dataset

    out, root = results
    store = ResultsStore(out)
    preds, metrics = store.predictions(), store.metrics()
    for key in ("amibr/test", "atnorm-md/test"):
        kept, original = stored_dataset(store, preds, key), load(key, root)
        assert kept is not None and kept.ids == [str(i) for i in original.ids]
        calls = _ensemble_calls(preds, metrics, key)
        a, b = rater_analysis(kept, calls, n_boot=30)[0], rater_analysis(original, calls, n_boot=30)[0]
        assert a["n"] > 0 and a["leave_one_out"] and a["label_noise"]["models"]
        assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def test_the_report_reads_each_folds_scores_from_the_store(
    results: tuple[Path, Path], tmp_path: Path
) -> None:
    """Per-fold figures are scored once, when the fold finishes; the report does not score the
    predictions again (a stored value changed by hand shows in the table)."""
    import sqlite3

    copy = tmp_path / "results"
    shutil.copytree(results[0], copy)
    with sqlite3.connect(copy / "results.sqlite") as con:
        con.execute(
            "UPDATE metrics SET value = 0.123 WHERE metric = 'balanced_accuracy' AND variant = 'fold'"
            " AND dataset = 'amibr/test'"
        )
    build_report(copy, results[1], n_boot=0)
    table = pd.read_csv(copy / "report" / "tables.csv").set_index("dataset")
    assert table.loc["amibr/test", "bacc_mean"] == pytest.approx(0.123)
    assert table.loc["atnorm-md/test", "bacc_mean"] != pytest.approx(0.123)


def test_calibration_is_fitted_on_validation_folds_only(
    results: tuple[Path, Path], tmp_path: Path, cli
) -> None:
    """`report --calibrate`: one temperature per fold model from its own validation predictions;
    the test sets' predictions do not move it; ECE before/after per test set in calibration.csv."""
    from mitobench.benchmark.store import ResultsStore
    from mitobench.report.calibration import fold_temperatures

    out, root = results
    preds = ResultsStore(out).predictions()
    temps = fold_temperatures(preds)
    assert len(temps) == 2 and all(0.05 <= t <= 20 for t in temps.values())  # two fold models
    test = ~preds["dataset"].str.endswith("/val")
    shuffled = preds.copy()
    shuffled.loc[test, "prob"] = np.random.default_rng(0).uniform(0, 1, test.sum())
    assert fold_temperatures(shuffled) == temps
    moved = preds.copy()
    moved.loc[~test, "prob"] = moved.loc[~test, "prob"] ** 3
    assert fold_temperatures(moved) != temps
    copy = tmp_path / "results"
    shutil.copytree(out, copy)
    code, stdout, err = cli("report", copy, "--data-root", root, "--bootstrap", "0", "--calibrate")
    assert code == 0, err
    table = pd.read_csv(copy / "report" / "calibration.csv")
    assert sorted(table["dataset"]) == ["amibr/test", "atnorm-md/test"]
    assert table[["ece_mean", "ece_scaled_mean", "ensemble_ece", "ensemble_ece_scaled"]].notna().all().all()
    assert "temperature scaling on validation folds" in stdout
    assert "Calibration: ECE before and after" in (copy / "report" / "report.html").read_text()
    main = pd.read_csv(copy / "report" / "tables.csv")
    assert {"ece_mean", "ece_ci_low", "ensemble_ece"} <= set(main.columns)  # ECE for every run, every set
