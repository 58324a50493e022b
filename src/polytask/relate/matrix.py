"""A T x T matrix of task-to-task values with the task names attached.

Every relatedness method returns one: ``values[k, l]`` relates task ``k`` to task ``l``. For an
asymmetric measure (look-ahead affinity) the row is the source and the column the target:
``values[i, j] = Z_{i -> j}``, the effect of a step on task ``i`` on task ``j``'s loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError


@dataclass
class TaskMatrix:
    """``values`` (T, T) between ``task_names``; ``name`` says what it measures."""

    name: str
    task_names: list[str]
    values: np.ndarray
    description: str = ""
    symmetric: bool = True

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=float)
        t = len(self.task_names)
        if self.values.shape != (t, t):
            raise PolytaskError(f"matrix '{self.name}' has shape {self.values.shape} for {t} tasks")
        if len(set(self.task_names)) != t:
            raise PolytaskError(f"matrix '{self.name}' repeats a task name")

    @property
    def frame(self) -> pd.DataFrame:
        """The matrix as a DataFrame indexed (rows and columns) by task name."""
        return pd.DataFrame(self.values, index=list(self.task_names), columns=list(self.task_names))

    def off_diagonal(self) -> np.ndarray:
        """The T(T-1) off-diagonal entries (NaN dropped)."""
        t = len(self.task_names)
        v = self.values[~np.eye(t, dtype=bool)]
        return v[np.isfinite(v)]

    def block_means(self, clusters: Sequence[Sequence[str]]) -> tuple[float, float]:
        """Mean off-diagonal value within ``clusters`` and across them (NaN ignored)."""
        label = {name: c for c, members in enumerate(clusters) for name in members}
        within, across = [], []
        for a, ta in enumerate(self.task_names):
            for b, tb in enumerate(self.task_names):
                if a == b or ta not in label or tb not in label or not np.isfinite(self.values[a, b]):
                    continue
                (within if label[ta] == label[tb] else across).append(self.values[a, b])
        return float(np.mean(within)) if within else float("nan"), float(np.mean(across)) if across else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "symmetric": self.symmetric,
            "tasks": list(self.task_names),
            "values": [[float(v) for v in row] for row in self.values],
        }

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, name: str = "matrix", symmetric: bool = False) -> "TaskMatrix":
        """A matrix from a square DataFrame whose index and columns are the same task names."""
        rows, cols = [str(i) for i in frame.index], [str(c) for c in frame.columns]
        if rows != cols:
            raise PolytaskError(f"matrix '{name}': row names {rows} differ from column names {cols}")
        try:
            values = frame.to_numpy(dtype=float)
        except (TypeError, ValueError):
            raise PolytaskError(f"matrix '{name}' holds a non-numeric value") from None
        return cls(name, rows, values, symmetric=symmetric)
