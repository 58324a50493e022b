"""Targets: inferring task kinds, validating target columns, and encoding labels with masks.

A missing label (NaN, None or an empty string) gives ``mask = False`` for that row and task:
it is left out of the task's loss and metrics, never imputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError
from polytask.tasks import Task


def _missing(s: pd.Series) -> np.ndarray:
    m = s.isna().to_numpy().copy()
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        m |= s.astype(str).str.strip().eq("").to_numpy()
    return m


def _plain(v: Any) -> Any:
    """A JSON-friendly scalar (numpy scalars become Python ones)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)  # 1.0 and 1 are the same class, whichever way a file was parsed
    return v


def infer_kind(s: pd.Series) -> str:
    """``binary`` for two classes, ``multiclass`` for more non-numeric classes, else ``regression``."""
    observed = s[~_missing(s)]
    if pd.api.types.is_bool_dtype(s):
        return "binary"
    if pd.api.types.is_numeric_dtype(s):
        uniq = pd.unique(observed)
        return "binary" if len(uniq) == 2 and set(np.asarray(uniq, dtype=float)) <= {0.0, 1.0} else "regression"
    return "binary" if observed.nunique() <= 2 else "multiclass"


def infer_tasks(
    frame: pd.DataFrame,
    targets: list[str],
    aux: list[str] | None = None,
    kinds: dict[str, str] | None = None,
    weights: dict[str, float] | None = None,
) -> list[Task]:
    """One task per target (and auxiliary) column; a kind not given is inferred from the column."""
    aux = list(aux or [])
    kinds = dict(kinds or {})
    weights = dict(weights or {})
    if not targets:
        raise PolytaskError("no target column given (use --target COL)")
    for col in list(targets) + aux:
        if col not in frame.columns:
            raise PolytaskError(f"target column '{col}' is not in the data (columns: {_preview(frame.columns)})")
    both = sorted(set(targets) & set(aux))
    if both:
        raise PolytaskError(f"column '{both[0]}' is given both as --target and as --aux")
    for name in list(kinds) + list(weights):
        if name not in targets and name not in aux:
            raise PolytaskError(f"'{name}' is not a --target or --aux column")
    return [
        Task(
            name=col,
            kind=kinds.get(col) or infer_kind(frame[col]),  # type: ignore[arg-type]
            columns=(col,),
            weight=float(weights.get(col, 1.0)),
            auxiliary=col in aux,
        )
        for col in list(targets) + aux
    ]


def _preview(cols: Any, n: int = 8) -> str:
    cols = [str(c) for c in cols]
    return ", ".join(cols[:n]) + (", ..." if len(cols) > n else "")


def validate_targets(frame: pd.DataFrame, tasks: list[Task]) -> None:
    """Check every task's columns exist, hold labels, and fit the task's kind."""
    for task in tasks:
        for col in task.columns:
            if col not in frame.columns:
                raise PolytaskError(
                    f"target column '{col}' of task '{task.name}' is not in the data (columns: {_preview(frame.columns)})"
                )
        observed_any = False
        for col in task.columns:
            s = frame[col]
            miss = _missing(s)
            if miss.all():
                continue
            observed_any = True
            values = s[~miss]
            if task.kind in ("regression", "multilabel"):
                num = pd.to_numeric(values, errors="coerce")
                if num.isna().any():
                    bad = values[num.isna()].iloc[0]
                    raise PolytaskError(f"{task.kind} target column '{col}' holds non-numeric value '{bad}'")
                if np.isinf(num.to_numpy(dtype=float)).any():
                    raise PolytaskError(f"{task.kind} target column '{col}' holds an infinite value")
                if task.output == "sigmoid" and ((num < 0) | (num > 1)).any():
                    bad = num[(num < 0) | (num > 1)].iloc[0]
                    raise PolytaskError(f"task '{task.name}' has a sigmoid output but column '{col}' holds {bad:g}, "
                                        "outside [0, 1]")
                if task.kind == "multilabel" and not set(num.unique()) <= {0.0, 1.0}:
                    bad = num[~num.isin([0.0, 1.0])].iloc[0]
                    raise PolytaskError(f"multilabel target column '{col}' holds '{bad}'; labels must be 0 or 1")
            else:
                n_classes = values.astype(str).nunique()
                if n_classes < 2:
                    raise PolytaskError(
                        f"classification task '{task.name}' has a single class '{values.iloc[0]}' in column '{col}'"
                    )
                if task.kind == "binary" and n_classes > 2:
                    raise PolytaskError(
                        f"binary task '{task.name}' has {n_classes} classes in column '{col}' (use --kind {task.name}=multiclass)"
                    )
        if not observed_any:
            raise PolytaskError(f"task '{task.name}' has no labels: every value of column '{task.columns[0]}' is missing")


@dataclass
class TargetEncoder:
    """Encodes one task's labels as a float array plus a mask, and decodes network outputs.

    Regression targets are standardized with the training mean and std (``(y - mu) / sigma``)
    so tasks on different scales start with comparable losses; outputs are mapped back. With
    ``standardize=False``, and always for a task with a sigmoid output (``Task.output``), the
    targets are kept as they are (``mu = 0``, ``sigma = 1``). A sigmoid task's prediction is
    ``sigmoid(r)`` of the raw output ``r``.
    """

    task: Task
    standardize: bool = True
    classes_: list[Any] = field(default_factory=list)
    mean_: list[float] = field(default_factory=list)
    std_: list[float] = field(default_factory=list)

    @property
    def output_dim(self) -> int:
        if self.task.kind == "multiclass":
            return len(self.classes_)
        if self.task.kind == "binary":
            return 1
        return len(self.task.columns)

    def fit(self, frame: pd.DataFrame, train_rows: np.ndarray) -> "TargetEncoder":
        kind = self.task.kind
        if kind in ("binary", "multiclass"):
            s = frame[self.task.columns[0]]
            values = s[~_missing(s)]
            plain = {_plain(v) for v in pd.unique(values)}
            try:
                self.classes_ = sorted(plain)
            except TypeError:  # mixed types: order by text
                self.classes_ = sorted(plain, key=str)
        elif kind == "regression":
            y, m = self._numeric(frame.iloc[train_rows])
            self.mean_, self.std_ = [], []
            for j in range(y.shape[1]):
                obs = y[m[:, j], j]
                if obs.size == 0:
                    raise PolytaskError(
                        f"task '{self.task.name}' has no labels in the training rows (column '{self.task.columns[j]}')"
                    )
                sd = float(obs.std())
                scaled = self.standardize and self.task.output == "linear"
                self.mean_.append(float(obs.mean()) if scaled else 0.0)
                self.std_.append((sd if sd > 0 else 1.0) if scaled else 1.0)
        return self

    def _numeric(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        cols = []
        for col in self.task.columns:
            s = frame[col]
            miss = _missing(s)
            x = pd.to_numeric(s.where(~miss, np.nan), errors="coerce").to_numpy(dtype=float)
            bad = np.isnan(x) & ~miss
            if bad.any():
                raise PolytaskError(
                    f"{self.task.kind} target column '{col}' holds non-numeric value '{s[bad].iloc[0]}'"
                )
            cols.append(x)
        y = np.stack(cols, axis=1)
        return y, ~np.isnan(y)

    def encode(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(targets, mask)``: float32 ``(n, d)`` with 0 where masked (``d = 1`` holding the class
        index for binary and multiclass), and a boolean mask of the same shape."""
        kind = self.task.kind
        if kind in ("binary", "multiclass"):
            col = self.task.columns[0]
            s = frame[col]
            miss = _missing(s)
            lookup = {str(c): i for i, c in enumerate(self.classes_)}
            codes = s[~miss].map(lambda v: lookup.get(str(_plain(v)), -1)).to_numpy(dtype=np.int64)
            if (codes < 0).any():
                bad = s[~miss].iloc[int(np.flatnonzero(codes < 0)[0])]
                raise PolytaskError(f"target column '{col}' holds class '{bad}' that was not seen in training")
            idx = np.zeros(len(s), dtype=np.float32)
            idx[~miss] = codes
            return idx[:, None], ~miss[:, None]
        y, m = self._numeric(frame)
        if kind == "regression":
            y = (y - np.asarray(self.mean_)) / np.asarray(self.std_)
        return np.where(m, y, 0.0).astype(np.float32), m

    def decode(self, output: np.ndarray) -> dict[str, np.ndarray]:
        """Map raw network outputs (logits or standardized values) to user-facing predictions.

        Returns ``{"value": ...}`` for regression (original units), ``{"proba": ..., "label": ...}``
        for classification, ``{"proba": ..., "label": ...}`` (0/1 per column) for multilabel.
        """
        kind = self.task.kind
        if kind == "regression":
            return {"value": self.link(output) * np.asarray(self.std_) + np.asarray(self.mean_)}
        if kind == "binary":
            p1 = 1.0 / (1.0 + np.exp(-output[:, 0]))
            proba = np.stack([1 - p1, p1], axis=1)
        elif kind == "multiclass":
            z = output - output.max(axis=1, keepdims=True)
            e = np.exp(z)
            proba = e / e.sum(axis=1, keepdims=True)
        else:
            proba = 1.0 / (1.0 + np.exp(-output))
            return {"proba": proba, "label": (proba >= 0.5).astype(int)}
        labels = np.asarray(self.classes_, dtype=object)[proba.argmax(axis=1)]
        return {"proba": proba, "label": labels}

    def link(self, output: np.ndarray) -> np.ndarray:
        """A regression task's prediction in encoded units from its raw output: the output itself,
        or ``sigmoid(output)`` for a sigmoid task."""
        if self.task.output == "sigmoid":
            return 1.0 / (1.0 + np.exp(-np.asarray(output, dtype=float)))
        return output

    def unlink(self, encoded: np.ndarray, eps: float = 1e-7) -> np.ndarray:
        """The raw output whose :meth:`link` is ``encoded`` (a baseline's prediction in encoded
        units): identity, or the logit of ``encoded`` clipped to ``[eps, 1 - eps]``."""
        if self.task.output == "sigmoid":
            p = np.clip(np.asarray(encoded, dtype=float), eps, 1 - eps)
            return np.log(p / (1 - p))
        return encoded

    def to_dict(self) -> dict[str, Any]:
        return {"classes": self.classes_, "mean": self.mean_, "std": self.std_}

    @classmethod
    def from_dict(cls, task: Task, d: dict[str, Any]) -> "TargetEncoder":
        return cls(task=task, classes_=list(d["classes"]), mean_=list(d["mean"]), std_=list(d["std"]))
