"""``horizons``: one network predicting several horizons against one network per horizon
(Caruana 1997, section 4.3, "Time series prediction"; his Table 5: robot sensing 1, 2, 4 and 8
metres ahead, MTL helping the far horizons most).

Series (shipped by statsmodels, so the experiment runs offline): ``sunspots`` (yearly sunspot
numbers 1700-2008, 309 values) and ``co2`` (Mauna Loa CO2, weekly 1958-2001, averaged per
month, 526 values; the 5 empty months interpolated linearly). For each time ``t`` the inputs
are the last ``L`` values and the tasks the values at ``t + h`` for horizons ``h = 1, 2, 4, 8``
(:func:`polytask.forecasting.horizon_table`). ``sunspots`` (``L = 12`` years) is used as it
is; ``co2`` (``L = 24`` months) rises steadily, so its inputs and targets are taken relative to
the last value, ``s[t - k] - s[t]`` and ``s[t + h] - s[t]`` (a trend a network could not
extrapolate otherwise); RMSE is in the series' units either way.

Evaluation: rolling origins. The last ``8 B`` rows are cut into 8 test blocks of ``B`` rows
(``B`` = 12 for both); for the block starting at row ``s``, the validation rows (early stopping)
are the ``V = 12`` rows ending ``H = 8`` rows before ``s`` and the training rows end ``H`` rows
before the validation rows (the purge of :mod:`polytask.forecasting`: no training target lies
in the validation period, none of those in the test period). Conditions: ``full`` (every
earlier row trains) and ``little`` (only the last 40 rows before the purge). Networks: one
hidden layer of 32 tanh units, inputs and targets standardized on the training rows, Adam (lr
3e-3), batch 16, at most 300 epochs, per-task early stopping (patience 30); MTL has one head per
horizon, STL one such network per horizon. Each (series, condition, block) is trained with 3
initialisation seeds (1000 * seed + 10 * block + i) and the block's score is the mean test
RMSE over them, per horizon.

Tests: per horizon, the paired t-test of MTL's against STL's RMSE over the 8 blocks
(Holm-adjusted over the 16 (series, condition, horizon) comparisons). Does the gain grow with the
horizon? Per block, the least-squares slope of the relative gain ``(STL - MTL) / STL`` on
``log2 h``; a one-sample t-test of the 8 slopes against 0 (:func:`growth_tests`). The blocks'
training rows overlap (an expanding or sliding window), so the Nadeau-Bengio corrected p-value
(test rows / training rows) is given beside the plain one and decides. ``--quick``: 2 blocks,
1 seed, 3 epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from polytask.compare.stats import holm, one_sample_test
from polytask.data.config import DataConfig
from polytask.data.prepare import prepare
from polytask.data.splits import Split
from polytask.forecasting import horizon_table
from polytask.setups import stl_settings
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, train_model
from polytask_lab.experiments.common import ExperimentResult

HORIZONS = (1, 2, 4, 8)
SERIES = {"sunspots": {"lags": 12, "relative": False}, "co2": {"lags": 24, "relative": True}}
CONDITIONS = {"full": None, "little": 40}
BLOCKS, BLOCK_ROWS, VAL_ROWS = 8, 12, 12
#: Caruana 1997, Table 5 (robot sensory prediction, SSE; * significant).
PAPER = {"horizons": [1, 2, 4, 8], "STL": [0.074, 0.098, 0.145, 0.183], "MTL": [0.076, 0.094, 0.131, 0.165],
         "change": ["+2.7%", "-4.1%", "-9.7% *", "-10.9% *"], "source": "Caruana 1997, Machine Learning 28, Table 5 "
         "(robot sensing 1, 2, 4, 8 metres ahead; not these series)"}


def load_series(name: str) -> pd.Series:
    """One of the statsmodels series of the module docstring."""
    import statsmodels.api as sm

    if name == "sunspots":
        return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].astype(float).rename("sunspots")
    if name == "co2":
        monthly = sm.datasets.co2.load_pandas().data["co2"].resample("MS").mean()
        return monthly.interpolate("linear").reset_index(drop=True).rename("co2")
    raise ValueError(f"unknown series '{name}'")


def supervised(series: pd.Series, lags: int, relative: bool) -> tuple[pd.DataFrame, list[str], list[str], np.ndarray]:
    """Table, feature and target names, and each row's last value (added back for RMSE when
    ``relative``)."""
    table = horizon_table(series.to_numpy(), HORIZONS, lags)
    frame = table.frame.copy()
    last = frame["y:lag0"].to_numpy()
    if relative:
        for col in table.features + table.targets:
            frame[col] = frame[col] - last
        features = [c for c in table.features if c != "y:lag0"]
    else:
        features = list(table.features)
    return frame, features, list(table.targets), last


def block_split(n_rows: int, block: int, n_blocks: int, window: int | None, gap: int = max(HORIZONS)) -> Split:
    """Training, validation and test rows of test block ``block`` of ``n_blocks`` at the end."""
    start = n_rows - (n_blocks - block) * BLOCK_ROWS
    test = np.arange(start, start + BLOCK_ROWS)
    val = np.arange(start - gap - VAL_ROWS, start - gap)
    end = val[0] - gap
    train = np.arange(0 if window is None else max(0, end - window), end)
    return Split(train, val, test)


def block_scores(frame: pd.DataFrame, features: list[str], targets: list[str], split: Split, seeds: list[int],
                 epochs: int) -> dict[str, list[float]]:
    """Mean test RMSE per horizon over ``seeds`` for MTL and STL."""
    prepared = prepare(frame, targets, DataConfig(features=tuple(features)), split=split)
    spec = NetworkSpec(trunk=(32,), activation="tanh")
    out: dict[str, list[list[float]]] = {"MTL": [], "STL": []}
    for seed in seeds:
        config = TrainConfig(epochs=epochs, batch_size=16, lr=3e-3, patience=30, seed=seed, val_metrics=False)
        for arm, model in (("MTL", train_model(prepared, spec, config)),
                           ("STL", train_model(prepared, *stl_settings(spec, config), name="stl"))):
            out[arm].append([float(model.summary["test_metrics"][t]["rmse"]) for t in targets])
    return {arm: np.mean(np.array(v), axis=0).tolist() for arm, v in out.items()}


def arm_name(series: str, condition: str, arm: str, h: int) -> str:
    return f"{series}/{condition}: {arm} h{h}"


def run(quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    n_blocks = trials_override or (2 if quick else BLOCKS)
    n_seeds, epochs = (1, 3) if quick else (3, 300)
    result = ExperimentResult(
        name="horizons", metric="test RMSE (series units), mean over initialisation seeds", lower_is_better=True,
        protocol={"blocks": n_blocks, "trials": n_blocks, "block_rows": BLOCK_ROWS, "val_rows": VAL_ROWS,
                  "horizons": list(HORIZONS), "series": SERIES, "conditions": CONDITIONS, "seeds_per_block": n_seeds,
                  "epochs": epochs, "seed": seed, "doc": __doc__},
        comparisons=[(arm_name(s, c, "MTL", h), arm_name(s, c, "STL", h), "MTL vs STL")
                     for s in SERIES for c in CONDITIONS for h in HORIZONS],
        extra={"paper": PAPER, "rows": {}},
    )
    for name, spec in SERIES.items():
        frame, features, targets, _ = supervised(load_series(name), spec["lags"], spec["relative"])
        for condition, window in CONDITIONS.items():
            train_rows = []
            for block in range(n_blocks):
                split = block_split(len(frame), block, n_blocks, window)
                train_rows.append(len(split.train))
                seeds = [seed * 1000 + 10 * block + i for i in range(n_seeds)]
                scores = block_scores(frame, features, targets, split, seeds, epochs)
                for arm, values in scores.items():
                    for h, v in zip(HORIZONS, values):
                        result.add(arm_name(name, condition, arm, h), v)
            result.extra["rows"][f"{name}/{condition}"] = {"train": float(np.mean(train_rows)), "val": VAL_ROWS,
                                                           "test": BLOCK_ROWS, "train_per_block": train_rows}
            result.trial_done(len(result.extra["rows"]) - 1, len(SERIES) * len(CONDITIONS), quiet=quick)
    return result.finish()


def growth_tests(saved: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (series, condition): each block's slope of the relative gain on log2(h), and the
    one-sample t-test of the slopes against 0 (plain and Nadeau-Bengio corrected, with the
    condition's test/training row ratio), Holm-adjusted over the (series, condition) pairs on
    the corrected p-value."""
    x = np.log2(np.array(HORIZONS, dtype=float))
    rows = []
    for name in SERIES:
        for condition in CONDITIONS:
            mtl = np.array([saved["scores"][arm_name(name, condition, "MTL", h)] for h in HORIZONS])
            stl = np.array([saved["scores"][arm_name(name, condition, "STL", h)] for h in HORIZONS])
            gain = (stl - mtl) / stl  # (horizons, blocks)
            slopes = [float(np.polyfit(x, gain[:, b], 1)[0]) for b in range(gain.shape[1])]
            rows_info = saved["extra"]["rows"][f"{name}/{condition}"]
            ratio = rows_info["test"] / rows_info["train"]
            test = one_sample_test(slopes, ratio)
            rows.append({"series": name, "condition": condition, "mean_gain": gain.mean(axis=1).tolist(),
                         "slopes": slopes, "mean_slope": float(np.mean(slopes)), "p": test.p_value,
                         "corrected_p": test.corrected_p_value, "ratio": ratio})
    for row, adjusted in zip(rows, holm([r["corrected_p"] for r in rows])):
        row["holm_p"] = adjusted
        row["grows"] = bool(row["mean_slope"] > 0 and adjusted < 0.05)
    return rows


def corrected_horizon_tests(saved: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (series, condition, horizon): the corrected paired test of MTL against STL over the
    blocks, Holm-adjusted over all 16 (the verdict's test: the blocks' training rows overlap)."""
    rows = []
    for name in SERIES:
        for condition in CONDITIONS:
            info = saved["extra"]["rows"][f"{name}/{condition}"]
            for h in HORIZONS:
                a = np.array(saved["scores"][arm_name(name, condition, "MTL", h)])
                b = np.array(saved["scores"][arm_name(name, condition, "STL", h)])
                test = one_sample_test(a - b, info["test"] / info["train"])
                rows.append({"series": name, "condition": condition, "h": h, "mtl": float(a.mean()),
                             "stl": float(b.mean()), "change": float((a.mean() - b.mean()) / b.mean()),
                             "wins": int(np.sum(a < b)), "n": len(a), "p": test.p_value,
                             "corrected_p": test.corrected_p_value})
    for row, adjusted in zip(rows, holm([r["corrected_p"] for r in rows])):
        row["holm_p"] = adjusted
        row["verdict"] = "no significant difference" if not adjusted < 0.05 else (
            "MTL better" if row["change"] < 0 else "MTL worse")
    return rows
