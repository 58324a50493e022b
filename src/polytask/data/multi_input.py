"""The multi-input MTL setting: each task has its own rows (one task per school, hospital...).

Both helpers turn it into the single-table setting: one target column per task that holds the
label on that task's rows and is missing elsewhere, so the label mask confines each task's loss
and metrics to its own rows while all rows feed the shared representation.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError


def from_task_column(
    frame: pd.DataFrame, task_column: str, target: str, prefix: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Spread ``target`` into one column per value of ``task_column``.

    Returns the new frame (``task_column`` and ``target`` removed, one ``<prefix><task>`` column
    per task added) and the new target column names, in sorted task order.
    """
    for col in (task_column, target):
        if col not in frame.columns:
            raise PolytaskError(f"column '{col}' is not in the data")
    prefix = f"{target}@" if prefix is None else prefix
    ids = frame[task_column]
    if ids.isna().any():
        raise PolytaskError(f"task-id column '{task_column}' has missing values")
    out = frame.drop(columns=[task_column, target]).copy()
    names: list[str] = []
    for task_id in sorted(ids.unique(), key=str):
        name = f"{prefix}{task_id}"
        out[name] = frame[target].where(ids == task_id, np.nan)
        names.append(name)
    return out, names


def from_task_datasets(
    datasets: Mapping[str, pd.DataFrame], target: str
) -> tuple[pd.DataFrame, list[str]]:
    """Stack one DataFrame per task (same feature columns, label column ``target``)."""
    if not datasets:
        raise PolytaskError("no per-task datasets given")
    frames = []
    for name, df in datasets.items():
        if target not in df.columns:
            raise PolytaskError(f"dataset of task '{name}' has no column '{target}'")
        frames.append(df.assign(__task__=str(name)))
    feature_sets = {tuple(sorted(set(f.columns))) for f in frames}
    if len(feature_sets) != 1:
        raise PolytaskError("per-task datasets must have the same columns")
    stacked = pd.concat(frames, ignore_index=True)
    return from_task_column(stacked, "__task__", target, prefix="")
