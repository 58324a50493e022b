"""Targets: inferring task kinds, validating target columns, and encoding labels with masks.

A missing label (NaN, None or an empty string) gives ``mask = False`` for that row and task:
it is left out of the task's loss and metrics, never imputed. Encoding is vectorised (class
labels are looked up as text keys, numbers converted once per column); messages name the
file's line of a bad label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from polytask.data.columns import Profile, missing_cells, number_hint, numbers_except, odd_cells_error
from polytask.data.preprocessing import category_text
from polytask.data.rows import RowOrigin
from polytask.errors import PolytaskError
from polytask.tasks import Task


_missing = missing_cells


def _plain(v: Any) -> Any:
    """A JSON-friendly scalar (numpy scalars become Python ones)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        return int(v)  # 1.0 and 1 are the same class, whichever way a file was parsed
    return v


@dataclass(frozen=True)
class KindInference:
    """A target's inferred kind, the reason (shown in the column report) and a warning if the
    inference could easily be wrong."""

    kind: str
    reason: str
    warning: str | None = None


def explain_kind(s: pd.Series, origin: RowOrigin | None = None) -> KindInference:
    """``binary`` for true/false, 0/1 or two text classes; ``multiclass`` for more text classes;
    ``regression`` for other numbers. A column of numbers with a few cells that are not (``'?'``,
    ``'1,234'``) or that holds one number is an error naming it: inferring from those would
    change the task silently."""
    name = str(s.name)
    origin = origin or RowOrigin.of(s.to_frame())
    if pd.api.types.is_bool_dtype(s):
        return KindInference("binary", "true/false values")
    if pd.api.types.is_datetime64_any_dtype(s):
        raise PolytaskError(f"target column '{name}' holds dates; polytask predicts numbers and classes "
                            "(turn the dates into a number first)")
    if pd.api.types.is_numeric_dtype(s):
        return _numeric_kind(name, s.to_numpy(dtype=np.float64, na_value=np.nan), "numbers")
    profile = Profile.of(s)
    if profile.observed == 0:
        return KindInference("regression", "no labels")
    odd = numbers_except(profile)
    if odd is not None:
        raise odd_cells_error(s, odd, origin, "numbers", number_hint(odd) + f", or give --kind {name}=multiclass "
                              "if they are class labels", role="target column")
    if profile.numbers().all():
        numbers = pd.to_numeric(pd.Series(profile.keys, dtype="str")).to_numpy(dtype=np.float64)
        return _numeric_kind(name, np.repeat(numbers, profile.counts), "numbers written as text")
    k = profile.distinct
    kind = "binary" if k <= 2 else "multiclass"
    return KindInference(kind, f"text with {k} {'class' if k == 1 else 'classes'}", _class_warning(s, profile, origin))


def _class_warning(s: pd.Series, profile: Profile, origin: RowOrigin) -> str | None:
    """A warning when the classes look wrong: nearly one class per row, or a few classes of one
    or two examples beside well-populated ones (a typo can add a class)."""
    name, k, n = s.name, profile.distinct, profile.observed
    if k > 2 and k > 0.5 * n:
        return (f"target '{name}' has {k} classes in {n} labelled rows, so most classes have one example; if it "
                f"is a number, write it as one (or give --kind {name}=regression)")
    few = max(2, int(0.02 * n))
    rare = profile.counts <= few
    if n >= 20 and 0 < rare.sum() < k and profile.counts[rare].sum() <= 0.1 * n and profile.counts.max() >= 5 * few:
        positions = np.flatnonzero(s.isin(list(profile.values[rare])).to_numpy())
        cells = ", ".join(f"{s.iloc[p]!r} ({origin.name(p)})" for p in positions[:3])
        more = f" and {len(positions) - 3} more" if len(positions) > 3 else ""
        return (f"target '{name}' has {rare.sum()} {'class' if rare.sum() == 1 else 'classes'} of at most {few} "
                f"examples among {n} labelled rows: {cells}{more}; a typo? ({k} classes inferred)")
    return None


def _numeric_kind(name: str, x: np.ndarray, what: str) -> KindInference:
    observed = x[~np.isnan(x)]
    if observed.size == 0:
        return KindInference("regression", "no labels")
    lo, hi = float(observed.min()), float(observed.max())
    if lo == hi:
        raise PolytaskError(f"target column '{name}' holds a single value ({_plain(lo)}) in every labelled row: "
                            "there is nothing to learn")
    if not ((observed == lo) | (observed == hi)).all():
        return KindInference("regression", f"{what} ({len(pd.unique(observed))} distinct values)")
    if (lo, hi) == (0.0, 1.0):
        return KindInference("binary", f"{what} 0 and 1")
    return KindInference("regression", f"{what} with 2 distinct values",
                         f"target '{name}' holds only two numbers ({_plain(lo)} and {_plain(hi)}): trained as "
                         f"regression; give --kind {name}=binary to classify")


def infer_kind(s: pd.Series) -> str:
    """The kind :func:`explain_kind` infers for ``s``."""
    return explain_kind(s).kind


def infer_tasks_explained(
    frame: pd.DataFrame,
    targets: list[str],
    aux: list[str] | None = None,
    kinds: dict[str, str] | None = None,
    weights: dict[str, float] | None = None,
    origin: RowOrigin | None = None,
) -> list[tuple[Task, KindInference]]:
    """One task per target (and auxiliary) column with how its kind was chosen; a kind not
    given is inferred from the column (:func:`explain_kind`)."""
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
    origin = origin or RowOrigin.of(frame)
    out = []
    for col in list(targets) + aux:
        how = KindInference(kinds[col], "given") if kinds.get(col) else explain_kind(frame[col], origin)
        task = Task(name=col, kind=how.kind, columns=(col,), weight=float(weights.get(col, 1.0)),  # type: ignore[arg-type]
                    auxiliary=col in aux)
        out.append((task, how))
    return out


def infer_tasks(
    frame: pd.DataFrame,
    targets: list[str],
    aux: list[str] | None = None,
    kinds: dict[str, str] | None = None,
    weights: dict[str, float] | None = None,
) -> list[Task]:
    """One task per target (and auxiliary) column; a kind not given is inferred from the column."""
    return [task for task, _ in infer_tasks_explained(frame, targets, aux, kinds, weights)]


def _preview(cols: Any, n: int = 8) -> str:
    cols = [str(c) for c in cols]
    return ", ".join(cols[:n]) + (", ..." if len(cols) > n else "")


def validate_targets(frame: pd.DataFrame, tasks: list[Task], origin: RowOrigin | None = None) -> None:
    """Check every task's columns exist, hold labels, and fit the task's kind."""
    origin = origin or RowOrigin.of(frame)
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
            if task.kind in ("regression", "multilabel"):
                _check_numbers(task, col, s, miss, origin)
            else:
                _check_classes(task, col, s[~miss])
        if not observed_any:
            raise PolytaskError(f"task '{task.name}' has no labels: every value of column '{task.columns[0]}' is missing")


def _check_numbers(task: Task, col: str, s: pd.Series, miss: np.ndarray, origin: RowOrigin) -> None:
    x = _as_numbers(s, miss)
    bad = np.isnan(x) & ~miss
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise PolytaskError(f"{task.kind} target column '{col}' holds non-numeric value '{s.iloc[pos]}' ({origin.name(pos)})")
    if np.isinf(x).any():
        pos = int(np.flatnonzero(np.isinf(x))[0])
        raise PolytaskError(f"{task.kind} target column '{col}' holds an infinite value ({origin.name(pos)})")
    outside = ~miss & ((x < 0) | (x > 1))
    if task.output == "sigmoid" and outside.any():
        pos = int(np.flatnonzero(outside)[0])
        raise PolytaskError(f"task '{task.name}' has a sigmoid output but column '{col}' holds {x[pos]:g}, "
                            f"outside [0, 1] ({origin.name(pos)})")
    if task.kind == "multilabel":
        wrong = ~miss & ~np.isin(x, (0.0, 1.0))
        if wrong.any():
            pos = int(np.flatnonzero(wrong)[0])
            raise PolytaskError(f"multilabel target column '{col}' holds '{_plain(x[pos])}' ({origin.name(pos)}); "
                                "labels must be 0 or 1")


def _check_classes(task: Task, col: str, values: pd.Series) -> None:
    n_classes = class_keys(values).nunique()
    if n_classes < 2:
        raise PolytaskError(f"classification task '{task.name}' has a single class '{values.iloc[0]}' in column '{col}'")
    if task.kind == "binary" and n_classes > 2:
        raise PolytaskError(
            f"binary task '{task.name}' has {n_classes} classes in column '{col}' (use --kind {task.name}=multiclass)"
        )


def _as_numbers(s: pd.Series, miss: np.ndarray) -> np.ndarray:
    """A target column as float64 numbers (NaN where missing or not a number)."""
    if pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    return pd.to_numeric(s.where(~miss), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def class_keys(s: pd.Series) -> pd.Series:
    """Class labels as text keys: ``1.0`` and ``1`` are one class, ``True`` is ``'True'``."""
    return category_text(s)


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

    @property
    def target_width(self) -> int:
        """Columns of the encoded targets (1, the class index, for binary and multiclass)."""
        return 1 if self.task.kind in ("binary", "multiclass") else len(self.task.columns)

    def fit(self, frame: pd.DataFrame, train_rows: np.ndarray) -> "TargetEncoder":
        kind = self.task.kind
        if kind in ("binary", "multiclass"):
            s = frame[self.task.columns[0]]
            values = s[~_missing(s)]
            by_key = {}
            for v in pd.unique(values):
                by_key.setdefault(str(_plain(v)), _plain(v))  # one class per text key
            plain = set(by_key.values())
            try:
                self.classes_ = sorted(plain)
            except TypeError:  # mixed types: order by text
                self.classes_ = sorted(plain, key=str)
        elif kind == "regression":
            y, m = self._numeric(frame, np.asarray(train_rows))
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

    def _numeric(self, frame: pd.DataFrame, rows: np.ndarray | None = None,
                 origin: RowOrigin | None = None) -> tuple[np.ndarray, np.ndarray]:
        cols = []
        for col in self.task.columns:
            s = frame[col]
            miss = _missing(s)
            x = _as_numbers(s, miss)
            bad = np.isnan(x) & ~miss
            if bad.any():
                pos = int(np.flatnonzero(bad)[0])
                where = f" ({(origin or RowOrigin.of(frame)).name(pos)})"
                raise PolytaskError(f"{self.task.kind} target column '{col}' holds non-numeric value '{s.iloc[pos]}'{where}")
            cols.append(x if rows is None else x[rows])
        y = np.stack(cols, axis=1)
        return y, ~np.isnan(y)

    def encode(self, frame: pd.DataFrame, rows: np.ndarray | None = None,
               origin: RowOrigin | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(targets, mask)`` of rows ``rows`` (default all): float32 ``(n, d)`` with 0 where
        masked (``d = 1`` holding the class index for binary and multiclass), and a boolean mask
        of the same shape."""
        kind = self.task.kind
        if kind in ("binary", "multiclass"):
            col = self.task.columns[0]
            s = frame[col]
            miss = _missing(s)
            codes = self._class_codes(s)
            unknown = (codes < 0) & ~miss
            if unknown.any():
                pos = int(np.flatnonzero(unknown)[0])
                where = (origin or RowOrigin.of(frame)).name(pos)
                raise PolytaskError(f"target column '{col}' holds class '{s.iloc[pos]}' ({where}) that was not seen in training")
            idx = np.where(miss, 0, codes).astype(np.float32)
            if rows is not None:
                idx, miss = idx[rows], miss[rows]
            return idx[:, None], ~miss[:, None]
        y, m = self._numeric(frame, rows, origin)
        if kind == "regression":
            y = (y - np.asarray(self.mean_)) / np.asarray(self.std_)
        return np.where(m, y, 0.0).astype(np.float32), m

    def _class_codes(self, s: pd.Series) -> np.ndarray:
        """Each cell's class index (-1 for a missing or unknown label). Numbers are looked up as
        numbers when every class is one (as their text keys would match them, without writing
        every cell as text); anything else by its text key (:func:`class_keys`)."""
        numbers = [c for c in self.classes_ if isinstance(c, (int, float)) and not isinstance(c, bool)]
        numeric = (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                   and len(numbers) == len(self.classes_) and len({float(c) for c in numbers}) == len(numbers))
        if numeric:
            return pd.Index(np.asarray(numbers, dtype=np.float64)).get_indexer(s.to_numpy(dtype=np.float64, na_value=np.nan))
        keys = pd.Index([str(_plain(c)) for c in self.classes_], dtype=object)
        return keys.get_indexer(class_keys(s).astype(object))

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
