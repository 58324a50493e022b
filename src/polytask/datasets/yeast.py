"""Yeast gene functional classes (multi-label), as shipped by ``river``.

Source: Elisseeff and Weston (2001), "A kernel method for multi-labelled classification"
(NIPS 14); the copy in ``river/datasets/yeast.csv.gz`` (the MULAN version).
Licence: the file is distributed with river (BSD-3-Clause); the data set is a public research
benchmark.
Tasks: 14 binary tasks ``Class1`` ... ``Class14`` (a gene may belong to several classes).
Features: 103 numeric micro-array expression and phylogenetic-profile features ``Att1`` ...
``Att103``, used as they are (the harness standardizes them on the training rows).
Rows: 2,417 genes. Default split: none fixed; the harness draws seeded random splits.
"""

from __future__ import annotations

import pandas as pd

from polytask.datasets.base import Dataset, package_dir, require_file, subsample

SOURCE = "Elisseeff & Weston (2001); file river/datasets/yeast.csv.gz"
LICENCE = "BSD-3-Clause (river); public research benchmark"


def load_yeast(n_rows: int | None = None, seed: int = 0) -> Dataset:
    """The 14-label Yeast table; ``n_rows`` takes a seeded random subset for quick runs."""
    path = require_file(package_dir("river", "yeast") / "datasets" / "yeast.csv.gz", "yeast")
    frame = pd.read_csv(path)
    frame = frame.iloc[subsample(len(frame), n_rows, seed)].reset_index(drop=True)
    targets = [c for c in frame.columns if c.startswith("Class")]
    features = [c for c in frame.columns if c.startswith("Att")]
    frame[targets] = frame[targets].astype(int)
    return Dataset(
        "yeast", frame, targets, features, kinds={t: "binary" for t in targets},
        info={"source": SOURCE, "licence": LICENCE, "tasks": f"{len(targets)} binary gene-function classes",
              "preprocessing": "none (numeric features standardized on training rows by the harness)",
              "default_split": "random (seeded)", "rows": len(frame)},
    )
