"""Reading tables (CSV, Parquet, DataFrame, numpy or torch arrays) into pandas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError

TableLike = Any  # str | Path | pd.DataFrame | np.ndarray | torch.Tensor


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file; empty, missing or malformed files raise PolytaskError."""
    p = Path(path)
    if not p.exists():
        raise PolytaskError(f"file '{p}' does not exist")
    if p.is_dir():
        raise PolytaskError(f"'{p}' is a directory, not a data file")
    if p.stat().st_size == 0:
        raise PolytaskError(f"file '{p}' is empty")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif suffix in (".csv", ".txt", ".tsv", ".gz"):
            sep = "\t" if suffix == ".tsv" else ","
            df = pd.read_csv(p, sep=sep)
        else:
            raise PolytaskError(f"file '{p}': unsupported format '{suffix}' (use .csv or .parquet)")
    except PolytaskError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for malformed files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolytaskError(f"file '{p}' could not be read as {suffix[1:]}: {first}") from None
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise PolytaskError(f"file '{p}' has no data rows")
    unnamed = [c for c in df.columns if str(c).startswith("Unnamed:")]
    if len(unnamed) == df.shape[1]:
        raise PolytaskError(f"file '{p}' has no header row")
    df.columns = [str(c) for c in df.columns]
    return df


def as_frame(data: TableLike, prefix: str = "x") -> pd.DataFrame:
    """A DataFrame from a path, DataFrame, or 1-D/2-D numpy or torch array (columns x0, x1, ...)."""
    if isinstance(data, pd.DataFrame):
        out = data.copy()
        out.columns = [str(c) for c in out.columns]
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
