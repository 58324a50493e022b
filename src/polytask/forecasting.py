"""Multi-horizon forecasting as multi-task learning (Caruana 1997: "using the future to predict
the present"; each horizon is a task).

``horizon_table`` turns one or more time series (rows in time order) into a supervised table.
For each time ``t`` with enough history and future:

- inputs ``<s>:lag<k> = s[t - k]`` for ``k = 0 .. lags - 1`` (values known at time ``t``);
- one task per (series, horizon): ``<s>:h<h> = s[t + h]``.

Horizons in ``aux_horizons`` (or task columns in ``aux_tasks``) are auxiliary: trained, never
predicted. So a user can forecast ``h = 1`` while training on ``h = 1, 2, 4, 8``.

``HorizonTable.split`` is time-ordered (train, then validation, then test) and purges the
``max_horizon`` rows before each boundary: every value a training row reads, as input or as
target, lies strictly before the first validation row's own time, and the same holds between
validation and test. Nothing from the future of a split leaks into an earlier one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from polytask.data.splits import Split
from polytask.errors import PolytaskError


@dataclass
class HorizonTable:
    """A supervised table built from time series, with its task lists and time index."""

    frame: pd.DataFrame
    features: list[str]
    targets: list[str]
    aux: list[str]
    time: np.ndarray
    max_horizon: int

    def split(self, val_fraction: float = 0.15, test_fraction: float = 0.15) -> Split:
        """Time-ordered train / validation / test rows with ``max_horizon`` rows purged before
        each boundary (see the module docstring)."""
        return time_split(len(self.frame), val_fraction, test_fraction, gap=self.max_horizon)


def time_split(n_rows: int, val_fraction: float, test_fraction: float, gap: int) -> Split:
    """Consecutive blocks train | gap | validation | gap | test over ``range(n_rows)``."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise PolytaskError(f"split fractions must be in [0, 1) and sum below 1, got val={val_fraction}, test={test_fraction}")
    if gap < 0:
        raise PolytaskError(f"gap must be >= 0, got {gap}")
    n_gaps = (val_fraction > 0) + (test_fraction > 0)
    usable = n_rows - gap * n_gaps
    n_val = int(round(val_fraction * usable))
    n_test = int(round(test_fraction * usable))
    n_train = usable - n_val - n_test
    if n_train < 2 or (val_fraction > 0 and n_val < 1) or (test_fraction > 0 and n_test < 1):
        raise PolytaskError(f"only {n_rows} rows: too few for a time-ordered split with a gap of {gap} rows")
    train = np.arange(n_train)
    start = n_train + (gap if n_val else 0)
    val = np.arange(start, start + n_val)
    start = start + n_val + (gap if n_test else 0)
    test = np.arange(start, start + n_test)
    return Split(train, val, test)


def _as_series_frame(series: pd.DataFrame | pd.Series | np.ndarray | Sequence[float]) -> pd.DataFrame:
    if isinstance(series, pd.DataFrame):
        frame = series.reset_index(drop=True)
    elif isinstance(series, pd.Series):
        frame = series.reset_index(drop=True).to_frame(name=series.name if series.name is not None else "y")
    else:
        arr = np.asarray(series, dtype=float)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise PolytaskError(f"time series must be 1-D or 2-D (time x series), got shape {arr.shape}")
        names = ["y"] if arr.shape[1] == 1 else [f"y{j}" for j in range(arr.shape[1])]
        frame = pd.DataFrame(arr, columns=names)
    for col in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[col]):
            raise PolytaskError(f"time series '{col}' is not numeric")
    return frame


def horizon_table(
    series: pd.DataFrame | pd.Series | np.ndarray | Sequence[float],
    horizons: Sequence[int] = (1, 2, 4, 8),
    lags: int = 8,
    aux_horizons: Sequence[int] = (),
    aux_tasks: Sequence[str] = (),
) -> HorizonTable:
    """The supervised table of lagged inputs and per-(series, horizon) targets (see the module
    docstring). ``series``: a DataFrame (one column per series), a Series, or an array."""
    frame = _as_series_frame(series)
    horizons = sorted({int(h) for h in horizons})
    if not horizons or horizons[0] < 1:
        raise PolytaskError(f"horizons must be positive integers, got {list(horizons)}")
    if lags < 1:
        raise PolytaskError(f"lags must be at least 1, got {lags}")
    bad = [h for h in aux_horizons if int(h) not in horizons]
    if bad:
        raise PolytaskError(f"auxiliary horizon {bad[0]} is not one of the horizons {horizons}")
    h_max = horizons[-1]
    n = len(frame)
    times = np.arange(lags - 1, n - h_max)
    if len(times) < 2:
        raise PolytaskError(f"series of {n} steps is too short for {lags} lags and horizon {h_max}")
    out: dict[str, np.ndarray] = {}
    features: list[str] = []
    for s in frame.columns:
        values = frame[s].to_numpy(dtype=float)
        for k in range(lags):
            name = f"{s}:lag{k}"
            out[name] = values[times - k]
            features.append(name)
    targets: list[str] = []
    aux: list[str] = []
    for s in frame.columns:
        values = frame[s].to_numpy(dtype=float)
        for h in horizons:
            name = f"{s}:h{h}"
            out[name] = values[times + h]
            (aux if h in aux_horizons else targets).append(name)
    unknown = [a for a in aux_tasks if a not in targets and a not in aux]
    if unknown:
        raise PolytaskError(f"auxiliary task '{unknown[0]}' is not a (series, horizon) column")
    for a in aux_tasks:
        if a in targets:
            targets.remove(a)
            aux.append(a)
    if not targets:
        raise PolytaskError("every horizon is auxiliary: at least one main (series, horizon) is needed")
    return HorizonTable(pd.DataFrame(out), features, targets, aux, times, h_max)
