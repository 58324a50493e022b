"""Multi-horizon tables: correct targets, time-ordered purged splits, no future leakage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from polytask import DataConfig, PolytaskError, Targets, prepare
from polytask.forecasting import horizon_table, time_split
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, fit


def test_targets_and_lags_on_a_clock_series() -> None:
    # s[t] = t and u[t] = 1000 + t: every cell names the time it was read at
    n = 60
    series = pd.DataFrame({"s": np.arange(n, dtype=float), "u": 1000.0 + np.arange(n)})
    table = horizon_table(series, horizons=(1, 2, 4, 8), lags=3, aux_horizons=(2, 4, 8))
    t = table.time
    assert t[0] == 2 and t[-1] == n - 1 - 8 and len(table.frame) == len(t)
    for k in range(3):
        np.testing.assert_array_equal(table.frame[f"s:lag{k}"], t - k)
        np.testing.assert_array_equal(table.frame[f"u:lag{k}"], 1000 + t - k)
    for h in (1, 2, 4, 8):
        np.testing.assert_array_equal(table.frame[f"s:h{h}"], t + h)
    assert table.targets == ["s:h1", "u:h1"]
    assert table.aux == ["s:h2", "s:h4", "s:h8", "u:h2", "u:h4", "u:h8"]
    # no input is read after its row's time; every target is strictly after it
    inputs = table.frame[[f for f in table.features if f.startswith("s:")]].to_numpy()
    assert (inputs <= t[:, None]).all()
    targets = table.frame[[c for c in table.targets + table.aux if c.startswith("s:")]].to_numpy()
    assert (targets > t[:, None]).all()


def test_split_is_time_ordered_and_purged() -> None:
    table = horizon_table(np.arange(300, dtype=float), horizons=(1, 8), lags=4)
    split = table.split(0.2, 0.2)
    t = table.time
    assert t[split.train].max() < t[split.val].min() and t[split.val].max() < t[split.test].min()
    # every value a training row touches (inputs and targets) precedes the first validation time
    touched_train = table.frame.iloc[split.train][table.features + table.targets].to_numpy().max()
    assert touched_train < t[split.val].min()
    touched_val = table.frame.iloc[split.val][table.features + table.targets].to_numpy().max()
    assert touched_val < t[split.test].min()
    plain = time_split(len(t), 0.2, 0.2, gap=0)
    assert len(plain.train) > len(split.train)  # the purge really removed rows


def test_no_leakage_on_white_noise() -> None:
    # On white noise the past says nothing about the future: a linear model on the lags must
    # score R^2 ~ 0 out of sample. A table that leaked s[t + h] into the inputs would give ~1.
    rng = np.random.default_rng(0)
    table = horizon_table(rng.normal(size=3000), horizons=(1, 2), lags=5)
    split = table.split(0.0, 0.3)
    X, f = table.frame[table.features].to_numpy(), table.frame
    for target in table.targets:
        model = LinearRegression().fit(X[split.train], f[target].to_numpy()[split.train])
        assert model.score(X[split.test], f[target].to_numpy()[split.test]) < 0.02
    # positive control: the same check does catch a leaked future value
    leaky = np.column_stack([X, f["y:h1"].to_numpy()])
    model = LinearRegression().fit(leaky[split.train], f["y:h1"].to_numpy()[split.train])
    assert model.score(leaky[split.test], f["y:h1"].to_numpy()[split.test]) > 0.99


def test_forecast_h1_while_training_on_more_horizons() -> None:
    t = np.arange(400)
    series = np.sin(t / 6.0) + 0.05 * np.random.default_rng(1).normal(size=len(t))
    table = horizon_table(series, horizons=(1, 2, 4, 8), lags=6, aux_horizons=(2, 4, 8))
    prepared = prepare(table.frame, Targets(table.targets, aux=table.aux), DataConfig(features=tuple(table.features)),
                       split=table.split())
    report = fit(prepared, spec=NetworkSpec(trunk=(8,)), config=TrainConfig(epochs=3, seed=0))
    assert list(report.mtl.predict(table.frame[table.features]).columns) == ["y:h1"]


def test_bad_arguments() -> None:
    with pytest.raises(PolytaskError, match="auxiliary horizon 3"):
        horizon_table(np.arange(50.0), horizons=(1, 2), aux_horizons=(3,))
    with pytest.raises(PolytaskError, match="every horizon is auxiliary"):
        horizon_table(np.arange(50.0), horizons=(1, 2), aux_horizons=(1, 2))
    with pytest.raises(PolytaskError, match="too short"):
        horizon_table(np.arange(10.0), horizons=(8,), lags=4)
