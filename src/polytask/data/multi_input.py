"""The multi-input MTL setting: each task has its own rows (one task per school, hospital...).

Both helpers turn it into the single-table setting: one target column per task that holds the
label on that task's rows and is missing elsewhere, so the label mask confines each task's loss
and metrics to its own rows while all rows feed the shared representation.

:class:`LongFormat` remembers the round trip (saved with the model's preprocessing): a long
table (one row per example, its task named in ``task_column``) becomes the wide masked form for
``evaluate``, and the wide predictions become one prediction per row, for the row's own task.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from polytask.data.columns import missing_cells
from polytask.data.preprocessing import category_text
from polytask.data.rows import RowOrigin
from polytask.errors import PolytaskError

#: ``frame.attrs`` key under which :func:`from_task_column` records the :class:`LongFormat`.
LONG_FORMAT_KEY = "polytask.long_format"


@dataclass(frozen=True)
class LongFormat:
    """A long table's task column, label column, and each task id's target column."""

    task_column: str
    target: str
    tasks: dict[str, str]  # task id (as text) -> the wide target column (the task's name)

    def to_dict(self) -> dict[str, Any]:
        return {"task_column": self.task_column, "target": self.target, "tasks": dict(self.tasks)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> "LongFormat | None":
        if not d:
            return None
        return cls(str(d["task_column"]), str(d["target"]), {str(k): str(v) for k, v in dict(d["tasks"]).items()})

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "LongFormat | None":
        """The long format :func:`from_task_column` recorded on ``frame``, if any."""
        return cls.from_dict(frame.attrs.get(LONG_FORMAT_KEY))

    def applies_to(self, frame: pd.DataFrame) -> bool:
        """Whether ``frame`` is in the long form (it holds the task column)."""
        return self.task_column in frame.columns

    def task_of_rows(self, frame: pd.DataFrame) -> np.ndarray:
        """The task (wide target column) of every row; an unknown or missing task id is an
        error naming its line."""
        ids = frame[self.task_column]
        keys = category_text(ids)
        names = keys.map(self.tasks)
        if names.isna().any():  # ids written as numbers one way and text the other ('01' and 1)
            numeric = pd.to_numeric(pd.Series(list(self.tasks)), errors="coerce")
            if numeric.notna().all() and numeric.is_unique:
                by_number = dict(zip(numeric.tolist(), self.tasks.values()))
                names = names.fillna(pd.to_numeric(keys, errors="coerce").map(by_number))
        bad = names.isna().to_numpy() | missing_cells(ids)
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            where = RowOrigin.of(frame).name(pos)
            known = ", ".join(sorted(self.tasks)[:8])
            raise PolytaskError(f"task-id column '{self.task_column}' holds '{ids.iloc[pos]}' ({where}), which is not a "
                                f"task of this model (tasks: {known}{', ...' if len(self.tasks) > 8 else ''})")
        return names.to_numpy(dtype=object)

    def wide(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The long ``frame`` in the wide masked form the model was trained on (every task's
        target column present, missing where the row belongs to another task)."""
        own = self.task_of_rows(frame)
        out = frame.drop(columns=[self.task_column]).copy(deep=False)
        labels = frame[self.target] if self.target in frame.columns else pd.Series(np.nan, index=frame.index)
        out = out.drop(columns=[self.target], errors="ignore")
        new = {name: labels.where(own == name) for name in self.tasks.values()}
        out = pd.concat([out, pd.DataFrame(new, index=frame.index)], axis=1)
        out.attrs = dict(frame.attrs)
        return out

    def own_task(self, predictions: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
        """One prediction per row of the long ``frame``, for the row's own task: ``task_column``,
        ``target`` (the value or label) and, for classification, ``target:proba_<class>``
        (the union of the tasks' classes; NaN for a class a row's task does not have)."""
        own = self.task_of_rows(frame)
        n = len(frame)
        value = np.empty(n, dtype=object)
        proba: dict[str, np.ndarray] = {}
        for name in self.tasks.values():
            rows = np.flatnonzero(own == name)
            if name not in predictions.columns or not len(rows):
                continue
            value[rows] = predictions[name].to_numpy()[rows]
            for col in predictions.columns:
                if col.startswith(f"{name}:proba_"):
                    key = f"{self.target}:proba_{col[len(name) + len(':proba_'):]}"
                    proba.setdefault(key, np.full(n, np.nan))[rows] = predictions[col].to_numpy()[rows]
        out = pd.DataFrame({self.task_column: frame[self.task_column].to_numpy(),
                            self.target: pd.Series(value).infer_objects().to_numpy()})
        for key in sorted(proba):
            out[key] = proba[key]
        return out


def from_task_column(
    frame: pd.DataFrame, task_column: str, target: str, prefix: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Spread ``target`` into one column per value of ``task_column``.

    Returns the new frame (``task_column`` and ``target`` removed, one ``<prefix><task>`` column
    per task added) and the new target column names, in sorted task order. Whole-number task ids
    read as floats are named as integers (``score@1``). The frame records its
    :class:`LongFormat` (``frame.attrs``) for the model to save.
    """
    for col in (task_column, target):
        if col not in frame.columns:
            raise PolytaskError(f"column '{col}' is not in the data")
    if task_column == target:
        raise PolytaskError(f"column '{target}' cannot be both the task-id column and the target")
    prefix = f"{target}@" if prefix is None else prefix
    ids = frame[task_column]
    miss = missing_cells(ids)
    if miss.any():
        pos = int(np.flatnonzero(miss)[0])
        raise PolytaskError(f"task-id column '{task_column}' has missing values ({RowOrigin.of(frame).name(pos)})")
    keys = category_text(ids).to_numpy(dtype=object)
    out = frame.drop(columns=[task_column, target]).copy(deep=False)
    names: list[str] = []
    tasks: dict[str, str] = {}
    new = {}
    for key in sorted(set(keys.tolist()), key=str):
        name = f"{prefix}{key}"
        if name in out.columns or name in new:
            raise PolytaskError(f"task column '{name}' for task id '{key}' clashes with a column of the data; rename it")
        new[name] = frame[target].where(keys == key)
        names.append(name)
        tasks[str(key)] = name
    out = pd.concat([out, pd.DataFrame(new, index=frame.index)], axis=1)
    out.attrs = dict(frame.attrs)
    out.attrs[LONG_FORMAT_KEY] = LongFormat(task_column, target, tasks).to_dict()
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
