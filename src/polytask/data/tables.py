"""Reading tables (CSV, Parquet, DataFrame, numpy or torch arrays) into pandas."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polytask.data.csv_dialect import csv_dialect
from polytask.data.reading import read_csv, read_parquet
from polytask.errors import PolytaskError

TableLike = Any  # str | Path | pd.DataFrame | np.ndarray | torch.Tensor


def read_table(path: str | Path, exact: Iterable[str] = ()) -> pd.DataFrame:
    """Read a CSV (``.csv``, ``.txt``, ``.tsv``, ``.gz``; fields separated by ``,``, or by ``;``,
    a tab or ``|`` where the header shows it, decimal commas where the first rows show them:
    :mod:`polytask.data.csv_dialect`) or Parquet file with pyarrow
    (:mod:`polytask.data.reading`: float columns as float32, integers exactly, headers checked);
    empty, missing or malformed files raise PolytaskError. ``exact`` names columns kept at
    full precision (identifiers copied to predictions)."""
    p = Path(path)
    if not p.exists():
        raise PolytaskError(f"file '{p}' does not exist")
    if p.is_dir():
        raise PolytaskError(f"'{p}' is a directory, not a data file")
    if not p.is_file():
        raise PolytaskError(f"'{p}' is not a regular file")
    if p.stat().st_size == 0:
        raise PolytaskError(f"file '{p}' is empty")
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df = read_parquet(p, exact)
    elif suffix in (".csv", ".txt", ".tsv", ".gz"):
        df = read_csv(p, csv_dialect(p), exact)
    else:
        raise PolytaskError(f"file '{p}': unsupported format '{suffix}' (use .csv or .parquet)")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise PolytaskError(f"file '{p}' has no data rows")
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed:")]
    if len(unnamed) == df.shape[1]:
        raise PolytaskError(f"file '{p}' has no header row")
    return df


def as_frame(data: TableLike, prefix: str = "x") -> pd.DataFrame:
    """A DataFrame from a path, DataFrame, or 1-D/2-D numpy or torch array (columns x0, x1, ...).

    A DataFrame is not copied (pandas copies on write); its column names become text and two
    names that are the same text are refused."""
    if isinstance(data, pd.DataFrame):
        names = [str(c) for c in data.columns]
        dup = [n for n in names if names.count(n) > 1]
        if dup:
            raise PolytaskError(f"column '{dup[0]}' appears twice in the table; rename one of them")
        out = data.copy(deep=False)
        out.columns = names
        return out
    if isinstance(data, (str, Path)):
        return read_table(data)
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # torch.Tensor
        data = data.detach().cpu().numpy()
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise PolytaskError(f"expected a 2-D array, got shape {arr.shape}")
    return pd.DataFrame(arr, columns=[f"{prefix}{i}" for i in range(arr.shape[1])])


def from_arrays(x: TableLike, y: TableLike, target_prefix: str = "y") -> tuple[pd.DataFrame, list[str]]:
    """One table from feature and target arrays (numpy or torch): columns ``x0..`` and ``y0..``.

    Returns the table and the target column names, ready for ``polytask.fit(table, targets)``.
    NaN in ``y`` marks a missing label.
    """
    features = as_frame(x, prefix="x")
    targets = as_frame(y, prefix=target_prefix)
    if len(features) != len(targets):
        raise PolytaskError(f"x has {len(features)} rows but y has {len(targets)}")
    clash = set(features.columns) & set(targets.columns)
    if clash:
        raise PolytaskError(f"column '{sorted(clash)[0]}' is both a feature and a target")
    return pd.concat([features.reset_index(drop=True), targets.reset_index(drop=True)], axis=1), list(targets.columns)


def with_kept_columns(frame: pd.DataFrame, predictions: pd.DataFrame, keep: Iterable[str]) -> pd.DataFrame:
    """``predictions`` after the ``keep`` columns of ``frame`` (an identifier copied through); a
    kept column absent from ``frame`` is left out with a warning, one that has the name of a
    prediction column is an error."""
    import warnings

    from polytask.data.preprocessing import DataWarning

    keep = list(keep)
    absent = [c for c in keep if c not in frame.columns]
    if absent:
        warnings.warn(f"kept column '{absent[0]}' is not in the data: the predictions do not carry it", DataWarning,
                      stacklevel=3)
    present = [c for c in keep if c in frame.columns]
    clash = [c for c in present if c in predictions.columns]
    if clash:
        raise PolytaskError(f"kept column '{clash[0]}' has the name of a prediction column; rename it")
    if not present:
        return predictions
    kept = frame[present].reset_index(drop=True)
    return pd.concat([kept, predictions.reset_index(drop=True)], axis=1)
