"""Solar flare counts (multi-target regression), as shipped by ``river``.

Source: UCI Machine Learning Repository, "Solar Flare" (Bradshaw 1989), the copy in
``river/datasets/solar-flare.csv.zip``.
Licence: the file is distributed with river (BSD-3-Clause); UCI data set (CC BY 4.0).
Tasks: 3 regressions, the number of C-, M- and X-class flares in the next 24 hours
(``c-class-flares``, ``m-class-flares``, ``x-class-flares``); mostly zeros, so RMSE differences
are small in absolute terms.
Features: 10 descriptors of the sunspot region, three categorical (Zurich class, largest spot
size, spot distribution: one-hot encoded by the harness) and seven small integers.
Rows: 1,066. Default split: none fixed; seeded random splits.
"""

from __future__ import annotations

import pandas as pd

from polytask.datasets.base import Dataset, package_dir, require_file

SOURCE = "UCI Solar Flare (Bradshaw 1989); file river/datasets/solar-flare.csv.zip"
LICENCE = "BSD-3-Clause (river); UCI data set CC BY 4.0"
TARGETS = ["c-class-flares", "m-class-flares", "x-class-flares"]


def load_solar_flare() -> Dataset:
    """The solar flare table with its three count targets."""
    path = require_file(package_dir("river", "solar_flare") / "datasets" / "solar-flare.csv.zip", "solar_flare")
    frame = pd.read_csv(path)
    for col in ("zurich-class", "largest-spot-size", "spot-distribution"):
        frame[col] = frame[col].astype(str)
    frame[TARGETS] = frame[TARGETS].astype(float)
    features = [c for c in frame.columns if c not in TARGETS]
    return Dataset(
        "solar_flare", frame, list(TARGETS), features, kinds={t: "regression" for t in TARGETS},
        info={"source": SOURCE, "licence": LICENCE, "tasks": "3 count regressions (C, M, X flares)",
              "preprocessing": "categorical descriptors one-hot, integers standardized (by the harness)",
              "default_split": "random (seeded)", "rows": len(frame)},
    )
