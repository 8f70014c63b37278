"""Shared fixtures: the real data at ../shared/data, and small synthetic data roots."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest
from PIL import Image

if TYPE_CHECKING:
    from mitobench.benchmark.grid import GridConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MITOBENCH_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own cache directory, so caches never leak between tests."""
    monkeypatch.setenv("MITOBENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    from mitobench.data import cache

    cache.clear_memory()


@pytest.fixture(scope="session")
def real_root() -> Path:
    """The real upstream data; tests using it skip with a reason when it is absent."""
    if not (SHARED_DATA / "AMi-Br").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MITOBENCH_TEST_DATA)")
    return SHARED_DATA


def write_png(path: Path, rgb: np.ndarray | None = None, seed: int = 0, mode: str = "RGB") -> Path:
    """A small random-texture image (or the given array) saved as PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if rgb is None:
        rgb = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert(mode).save(path)
    return path


def separable_patch(atypical: bool, seed: int, size: int = 32) -> np.ndarray:
    """A synthetic patch whose class is visible: a dark centre blob for atypical, none for normal."""
    rng = np.random.default_rng(seed)
    img = rng.normal(200, 20, (size, size, 3))
    if atypical:
        yy, xx = np.mgrid[:size, :size]
        blob = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 4) ** 2
        img[blob] = rng.normal(70, 15, (int(blob.sum()), 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def _patch(atypical: bool, seed: int, separable: bool) -> np.ndarray | None:
    return separable_patch(atypical, seed) if separable else None


def make_atnorm(
    root: Path, folder: str = "AtNorM-Br", n_atyp: int = 3, n_norm: int = 5, separable: bool = False
) -> Path:
    """An AtNorM-style dataset: `<folder>/{Atypical,Normal}/<n>.png`."""
    n = 1
    for cls, count in (("Atypical", n_atyp), ("Normal", n_norm)):
        for _ in range(count):
            write_png(
                root / folder / cls / f"{n}.png", _patch(cls == "Atypical", 10_000 + n, separable), seed=n
            )
            n += 1
    return root


def make_amibr(
    root: Path, n_slides: int = 10, per_slide: int = 6, n_test_slides: int = 3, separable: bool = False
) -> Path:
    """A small AMi-Br in the upstream layout, with AMI-BR.csv and amibr_train_split.csv."""
    rows = []
    uid = 0
    rng = np.random.default_rng(0)
    for s in range(n_slides + n_test_slides):
        for _ in range(per_slide):
            uid += 1
            atyp = bool(rng.random() < 0.3) or uid % 5 == 0
            rows.append(
                {
                    "slide": f"{s:03d}.tiff",
                    "dataset": "MIDOG21",
                    "uid": uid,
                    "x": 0,
                    "y": 0,
                    "expert1_label": "AMF other" if atyp else "NMF metaphase",
                    "expert2_label": "AMF other" if atyp else "NMF prometaphase",
                    "expert1_atypical": atyp,
                    "expert2_atypical": atyp,
                    "expert3_atypical": not atyp if uid % 7 == 0 else atyp,
                    "majority_atypical": atyp,
                }
            )
            cls = "Atypical" if atyp else "Normal"
            write_png(root / "AMi-Br" / cls / f"MIDOG21_{uid}.png", _patch(atyp, uid, separable), seed=uid)
    meta = pd.DataFrame(rows)
    meta.to_csv(root / "AMI-BR.csv")
    train = meta[meta["slide"] < f"{n_slides:03d}.tiff"].copy()
    train["final_label"] = np.where(train["majority_atypical"], "Atypical", "Normal")
    train["dataset_uid"] = train["dataset"] + "_" + train["uid"].astype(str) + ".png"
    train.to_csv(root / "amibr_train_split.csv")
    return root


@pytest.fixture
def synth_root(tmp_path: Path) -> Path:
    """A data root with a small AMi-Br and AtNorM-Br."""
    root = tmp_path / "data"
    make_amibr(root)
    make_atnorm(root)
    return root


@pytest.fixture
def separable_root(tmp_path: Path) -> Path:
    """A data root whose classes a small network can learn: AMi-Br, AtNorM-Br and AtNorM-MD."""
    root = tmp_path / "sep"
    make_amibr(root, n_slides=10, per_slide=12, n_test_slides=3, separable=True)
    make_atnorm(root, "AtNorM-Br", n_atyp=10, n_norm=20, separable=True)
    make_atnorm(root, "AtNorM-MD", n_atyp=10, n_norm=20, separable=True)
    return root


@pytest.fixture
def cli(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[int, str, str]]:
    """Run the real console entry point in-process: returns (exit code, stdout, stderr)."""
    from mitobench.cli import main

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["mitobench", *map(str, args)])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


# ---- a small trained run and real patches, shared by the slide and MIDOG tests

TINY_ARGS = [
    "--set",
    "input_size=32",
    "--set",
    "batch_size=16",
    "--set",
    "max_epochs=1",
    "--set",
    "precision=fp32",
]
"""`mitobench train` settings for a run that takes seconds."""

TINY_RUN = {"input_size": 32, "batch_size": 16, "max_epochs": 2, "lr": 3e-3, "precision": "fp32"}


@pytest.fixture(scope="session")
def real_patches(real_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """16 real AMi-Br patches (8 atypical, 8 normal) as PNG files and arrays."""
    folder = tmp_path_factory.mktemp("pngs")
    paths = sorted((real_root / "AMi-Br" / "Atypical").glob("*.png"))[:8]
    paths += sorted((real_root / "AMi-Br" / "Normal").glob("*.png"))[:8]
    arrays = []
    for i, p in enumerate(paths):
        rgb = np.asarray(Image.open(p).convert("RGB"))
        Image.fromarray(rgb).save(folder / f"{i:02d}.png")
        arrays.append(rgb)
    return folder, arrays


TINY_TRAIN = {
    "input_size": 32,
    "batch_size": 16,
    "max_epochs": 2,
    "lr": 3e-3,
    "precision": "fp32",
    "warmup_epochs": 0,
}


def tiny_grid(**extra: object) -> GridConfig:
    """A grid small enough for a test: ResNet-10t e2e and probe on folds 0 and 1, 2 epochs."""
    from mitobench.benchmark.grid import GridConfig

    values = {
        "name": "tiny",
        "preset": "cpu",
        "folds": [0, 1],
        "train": TINY_TRAIN,
        "runs": [{"model": "resnet10t", "modes": ["e2e", "probe"]}],
        **extra,
    }
    return GridConfig.model_validate(values)


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(results folder, data root) of the tiny e2e grid, trained once per test session. The data
    has AtNorM-MD expert votes and three atypical figures that look normal (errors for the
    gallery). Tests that damage the results copy them first."""
    from mitobench.benchmark.runner import run_grid

    root = tmp_path_factory.mktemp("grid-data")
    make_amibr(root, n_slides=10, per_slide=12, n_test_slides=3, separable=True)
    make_atnorm(root, "AtNorM-MD", n_atyp=10, n_norm=20, separable=True)
    for n in (1, 2, 3):
        write_png(root / "AtNorM-MD" / "Atypical" / f"{n}.png", separable_patch(False, 500 + n))
    votes = pd.DataFrame({"Filename": [f"{i}.png" for i in range(1, 31)]})
    for e in range(1, 6):
        votes[f"Expert_{e}"] = ["Atypical" if (i <= 10) != (i % 7 == e) else "Normal" for i in range(1, 31)]
    votes["Majority"] = ["Atypical" if i <= 10 else "Normal" for i in range(1, 31)]
    votes.to_csv(root / "AtNorM-MD_expert_votes.csv", index=False)
    out = tmp_path_factory.mktemp("grid-results")
    run_grid(
        tiny_grid(runs=[{"model": "resnet10t", "modes": ["e2e"]}]),
        out,
        root,
        job_overrides={"pretrained": False},
    )
    return out, root


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained run (EfficientNet-Lite0, two folds on separable synthetic data)."""
    from mitobench.runs.spec import parse_spec
    from mitobench.train.run import train_run

    root = tmp_path_factory.mktemp("sep")
    make_amibr(root, n_slides=10, per_slide=12, n_test_slides=3, separable=True)
    make_atnorm(root, "AtNorM-MD", n_atyp=4, n_norm=4, separable=True)
    spec = parse_spec({"model": "tf_efficientnet_lite0", "mode": "e2e", "preset": "cpu", "folds": [0, 1],
                       "eval_sets": ["atnorm-md/test"], "train": TINY_RUN})  # fmt: skip
    run = tmp_path_factory.mktemp("run") / "run"
    train_run(spec, run, root)
    return run


@pytest.fixture(scope="session")
def png_probs(real_patches, trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """`mitobench predict` of the trained run on the real patches' PNG files, sorted by id."""
    from mitobench.cli import main

    out = tmp_path_factory.mktemp("pred") / "p.csv"
    argv, sys.argv = (
        sys.argv,
        ["mitobench", "predict", str(trained_run), str(real_patches[0]), "--out", str(out)],
    )
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    finally:
        sys.argv = argv
    return pd.read_csv(out).sort_values("id").reset_index(drop=True)
