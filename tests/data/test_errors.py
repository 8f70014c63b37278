"""Bad input gives one message naming the file and the fix, a non-zero exit, no traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mitobench.data.cache import ImageCache
from mitobench.data.images import read_image
from mitobench.data.registry import load
from mitobench.errors import DataError
from tests.conftest import make_atnorm, write_png


def _assert_user_error(result: tuple[int, str, str], *needles: str) -> None:
    code, _, err = result
    assert code != 0
    assert "Traceback" not in err
    assert "error:" in err and "fix:" in err
    for needle in needles:
        assert needle in err, err


def test_missing_data_root(cli, tmp_path: Path) -> None:
    _assert_user_error(cli("data", "info", "--data-root", tmp_path / "nope"), "nope", "does not exist")


def test_data_root_without_datasets(cli, tmp_path: Path) -> None:
    _assert_user_error(cli("data", "info", "--data-root", tmp_path), "holds none of")


def test_missing_class_folder(cli, synth_root: Path) -> None:
    shutil.rmtree(synth_root / "AtNorM-Br" / "Normal")
    _assert_user_error(cli("data", "info", "--data-root", synth_root), "Normal/ is missing")


def test_empty_class(cli, synth_root: Path) -> None:
    for p in (synth_root / "AtNorM-Br" / "Atypical").iterdir():
        p.unlink()
    _assert_user_error(cli("data", "info", "--data-root", synth_root), "holds no images")


def test_corrupt_image_is_named(synth_root: Path) -> None:
    ds = load("atnorm-br", synth_root)
    victim = ds.paths[3]
    victim.write_bytes(victim.read_bytes()[:40])  # truncated PNG
    with pytest.raises(DataError) as info:
        ImageCache().load(ds)
    assert str(victim) in info.value.message and "corrupt or truncated" in info.value.fix


def test_corrupt_image_in_cli_verify(cli, synth_root: Path) -> None:
    victim = synth_root / "AtNorM-Br" / "Normal" / "4.png"
    victim.write_bytes(b"not a png at all")
    code, out, err = cli("data", "verify", "--data-root", synth_root)
    assert code == 1 and "4.png" in out and "not an image PIL can read" in out
    assert "Traceback" not in err


def test_non_rgb_images_are_converted(tmp_path: Path) -> None:
    grey = write_png(tmp_path / "g.png", mode="L")
    rgba = write_png(tmp_path / "a.png", mode="RGBA")
    assert read_image(grey).shape == (16, 16, 3)
    assert read_image(rgba).shape == (16, 16, 3)
    g = read_image(grey)
    assert (g[..., 0] == g[..., 1]).all()


def test_16_bit_images_are_refused(tmp_path: Path) -> None:
    from PIL import Image

    p = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 40000, dtype=np.uint16)).save(p)
    with pytest.raises(DataError, match="16-bit I;16 image"):
        read_image(p)


def test_mixed_image_sizes_are_refused(tmp_path: Path) -> None:
    root = make_atnorm(tmp_path, "AtNorM-Br")
    write_png(root / "AtNorM-Br" / "Normal" / "99.png", np.zeros((20, 20, 3), np.uint8))
    with pytest.raises(DataError, match=r"99\.png: image is 20x20"):
        ImageCache().load(load("atnorm-br", root))


def test_csv_naming_missing_files(cli, tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    pd.DataFrame({"path": ["a.png", "ghost.png"], "label": ["Atypical", "Normal"]}).to_csv(
        tmp_path / "set.csv", index=False
    )
    with pytest.raises(DataError, match=r"ghost\.png"):
        load(str(tmp_path / "set.csv"), tmp_path)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png")
    pd.DataFrame({"path": ["a.png", "b.png"], "label": [1, 0], "id": ["x", "x"]}).to_csv(
        tmp_path / "set.csv", index=False
    )
    with pytest.raises(DataError, match="'x' occurs 2 times"):
        load(str(tmp_path / "set.csv"), tmp_path)


def test_same_file_name_in_both_class_folders(synth_root: Path) -> None:
    src = synth_root / "AtNorM-Br" / "Atypical" / "1.png"
    shutil.copy(src, synth_root / "AtNorM-Br" / "Normal" / "1.png")
    with pytest.raises(DataError, match=r"'1\.png' occurs 2 times"):
        load("atnorm-br", synth_root)


def test_amibr_image_missing_from_split_file(cli, synth_root: Path) -> None:
    csv = pd.read_csv(synth_root / "amibr_train_split.csv")
    victim = synth_root / "AMi-Br" / csv["final_label"][0] / csv["dataset_uid"][0]
    victim.unlink()
    _assert_user_error(cli("data", "folds", "--data-root", synth_root), "amibr_train_split.csv", "not found")


def test_custom_folder_and_csv(tmp_path: Path) -> None:
    root = make_atnorm(tmp_path, "mine")
    ds = load(str(root / "mine"), tmp_path)
    assert ds.summary()["n"] == 8 and set(ds.labels) == {0, 1}
    rows = [
        {"path": str(p), "label": int(lbl), "group": "s1"} for p, lbl in zip(ds.paths, ds.labels, strict=True)
    ]
    pd.DataFrame(rows).to_csv(tmp_path / "mine.csv", index=False)
    from_csv = load(str(tmp_path / "mine.csv"), tmp_path)
    assert (from_csv.labels == ds.labels).all() and from_csv.summary()["n_slides"] == 1


@pytest.mark.parametrize("key", ["lab={missing}", "{missing}"])
def test_a_missing_custom_dataset_says_the_path_not_unknown_dataset(tmp_path: Path, key: str) -> None:
    from mitobench.data.registry import load

    missing = tmp_path / "[b]gone.csv"
    with pytest.raises(DataError) as err:
        load(key.format(missing=missing), tmp_path)
    assert f"{missing}: no such folder or CSV file" in err.value.message
    assert "unknown dataset" not in err.value.message
