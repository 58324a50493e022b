"""Preprocessing statistics fitted in one pass over record batches, into the same fitted
:class:`~polytask.data.preprocessing.FeaturePreprocessor` and
:class:`~polytask.data.targets.TargetEncoder` state the in-memory path saves.

- means and standard deviations: Chan, Golub and LeVeque's pairwise update of the count, mean
  and sum of squared deviations ``M2`` (batch ``b`` merged into the running ``a`` with
  ``delta = mean_b - mean_a``, ``M2 = M2_a + M2_b + delta^2 n_a n_b / n``), in float64; the
  population ``sd = sqrt(M2 / n)`` as numpy's ``std``. Equal to the in-memory values up to
  float64 rounding (about 1e-15 relative).
- medians (the fill of a missing number): exact while a column has at most ``capacity``
  training values (every value is kept); beyond, the median of a uniform reservoir sample of
  ``capacity`` values (Vitter's algorithm R, seeded). The sample median's standard error is
  about ``1.25 sd / sqrt(capacity)`` for a normal column (0.004 sd at the default 100 000).
- category vocabularies: exact counts per category over the training rows, then the
  ``max_categories`` rule of :meth:`FeaturePreprocessor.fit_vocabulary`.
- date parts: the moments of every candidate part; the parts kept are those not constant in
  training (as :func:`polytask.data.dates.varying_parts`).
- targets: class labels over all rows (as :meth:`TargetEncoder.fit` reads the whole column),
  regression means and sds over the training rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from polytask.data import dates
from polytask.data.columns import ColumnRole, missing_cells
from polytask.data.preprocessing import FeaturePreprocessor, _plain_text, category_text
from polytask.data.targets import TargetEncoder, _plain
from polytask.errors import PolytaskError

MEDIAN_SAMPLE = 100_000


class Moments:
    """Count, mean, ``M2``, min, max, whether a value was missing, and a reservoir sample."""

    def __init__(self, capacity: int, rng: np.random.Generator) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.lo, self.hi = math.inf, -math.inf
        self.missing = False
        self.first: Any = None
        self.sample = np.empty(capacity, dtype=np.float64)
        self.rng = rng
        self.dtype: np.dtype | None = None  # of the values added: the median is taken in it, as numpy's

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x)
        self.dtype = x.dtype if self.dtype is None else np.result_type(self.dtype, x.dtype)
        x = x.astype(np.float64, copy=False)
        nan = np.isnan(x)
        if nan.any():
            self.missing = True
            x = x[~nan]
        k = x.size
        if k == 0:
            return
        if self.first is None:
            self.first = x[0]
        mean_b = float(x.mean())
        m2_b = float(np.square(x - mean_b).sum())
        total = self.n + k
        delta = mean_b - self.mean
        self.mean += delta * k / total
        self.m2 += m2_b + delta * delta * self.n * k / total
        self.lo, self.hi = min(self.lo, float(x.min())), max(self.hi, float(x.max()))
        self._reservoir(x)
        self.n = total

    def _reservoir(self, x: np.ndarray) -> None:
        cap = self.sample.size
        take = max(0, min(cap - self.n, x.size))
        self.sample[self.n : self.n + take] = x[:take]
        rest = x[take:]
        if rest.size:
            seen = self.n + take + np.arange(rest.size)
            j = self.rng.integers(0, seen + 1)
            keep = j < cap
            self.sample[j[keep]] = rest[keep]

    def stats(self, scaled: bool = True) -> dict[str, float]:
        """As :func:`polytask.data.preprocessing._stats` on the values seen."""
        median = float(np.median(self.sample[: min(self.n, self.sample.size)].astype(self.dtype or np.float64)))
        if not scaled:
            return {"mean": 0.0, "std": 1.0, "median": median}
        std = math.sqrt(max(self.m2, 0.0) / self.n)
        return {"mean": self.mean, "std": std if std > 0 else 1.0, "median": median}

    @property
    def exact_median(self) -> bool:
        return self.n <= self.sample.size


class StreamStats:
    """The statistics of feature ``roles`` and target ``encoders``, one batch at a time."""

    def __init__(self, pre: FeaturePreprocessor, roles: list[ColumnRole], encoders: list[TargetEncoder],
                 capacity: int = MEDIAN_SAMPLE, seed: int = 0) -> None:
        self.pre, self.roles, self.encoders = pre, roles, encoders
        rng = np.random.default_rng(seed)
        self.pre.booleans_ = [r.name for r in roles if r.role == "boolean"]
        self.parts = {r.name: ["days"] if pre.dates_policy == "ordinal" else list(dates.DATE_PARTS)
                      for r in roles if r.role == "datetime"}
        self.moments: dict[str, list[Moments]] = {}
        for r in roles:
            if r.role in ("numeric", "boolean"):
                self.moments[r.name] = [Moments(capacity, rng)]
            elif r.role == "datetime":
                self.moments[r.name] = [Moments(capacity, rng) for _ in self.parts[r.name]]
        self.counts: dict[str, dict[str, int]] = {r.name: {} for r in roles if r.role == "categorical"}
        self.any_missing: dict[str, bool] = {}
        self.first_seconds: dict[str, Any] = {}
        self.classes: list[dict[str, Any]] = [{} for _ in encoders]
        self.targets = [[Moments(1, rng) for _ in e.task.columns] for e in encoders]
        self.train_rows = 0

    def add(self, frame: pd.DataFrame, train: np.ndarray, where: str, first_row: int) -> None:
        """Add a batch: ``train`` marks its training rows; ``where``/``first_row`` name rows in errors."""
        origin = _Rows(where, first_row)
        rows = np.flatnonzero(train)
        self.train_rows += rows.size
        for role in self.roles:
            self._add_feature(role, frame[role.name], rows, origin)
        for k, enc in enumerate(self.encoders):
            self._add_target(k, enc, frame, rows, origin)

    def _add_feature(self, role: ColumnRole, s: pd.Series, rows: np.ndarray, origin: Any) -> None:
        col, pre = role.name, self.pre
        if role.role == "categorical":
            sub = s.iloc[rows]
            miss = missing_cells(sub)
            self.any_missing[col] = self.any_missing.get(col, False) or bool(miss.any())
            table = self.counts[col]
            for key, n in category_text(sub[~miss]).value_counts().items():
                table[key] = table.get(key, 0) + int(n)
            return
        if role.role == "datetime":
            seconds = pre._seconds(col, s, role.date_format, origin)[rows]
            values = dates.date_parts(seconds, self.parts[col])
            self._check(col, values[:, 0], rows, origin)
            if col not in self.first_seconds and (~np.isnat(seconds)).any():
                self.first_seconds[col] = seconds[~np.isnat(seconds)][0]
            for j, m in enumerate(self.moments[col]):
                m.add(values[:, j])
            return
        x = pre._raw(col, s, origin)[rows]
        self._check(col, x, rows, origin)
        self.moments[col][0].add(x)

    def _check(self, col: str, x: np.ndarray, rows: np.ndarray, origin: Any) -> None:
        x = np.asarray(x, dtype=np.float64)
        for bad, what in ((np.isinf(x), "an infinite value"), (np.isnan(x) if self.pre.missing == "error" else None,
                                                               "a missing value")):
            if bad is not None and bad.any():
                tail = " and the missing-value policy is 'error'" if what == "a missing value" else ""
                raise PolytaskError(f"feature column '{col}' has {what} ({origin.name(int(rows[np.flatnonzero(bad)[0]]))}){tail}")

    def _add_target(self, k: int, enc: TargetEncoder, frame: pd.DataFrame, rows: np.ndarray, origin: Any) -> None:
        kind = enc.task.kind
        if kind in ("binary", "multiclass"):
            s = frame[enc.task.columns[0]]
            for v in pd.unique(s[~missing_cells(s)]):
                self.classes[k].setdefault(str(_plain(v)), _plain(v))
        elif kind == "regression":
            y, _ = enc._numeric(frame, rows, origin)
            for j, m in enumerate(self.targets[k]):
                m.add(y[:, j])

    # -- the fitted state --------------------------------------------------------------------
    def finish(self) -> tuple[FeaturePreprocessor, list[TargetEncoder]]:
        """The fitted preprocessor (constant columns in ``dropped_``) and target encoders."""
        if self.train_rows == 0:
            raise PolytaskError("no training rows: every row went to validation or test")
        pre = self.pre
        pre.numeric_, pre.categorical_, pre.indicators_, pre.dates_, pre.other_, pre.dropped_ = {}, {}, [], {}, {}, {}
        for role in self.roles:
            constant = self._finish_feature(role)
            if constant is not None:
                pre._forget(role.name)
                pre.dropped_[role.name] = constant
        pre.columns_ = [r.name for r in self.roles if r.name not in pre.dropped_]
        return pre, [self._finish_target(k, enc) for k, enc in enumerate(self.encoders)]

    def _finish_feature(self, role: ColumnRole) -> str | None:
        col, pre = role.name, self.pre
        if role.role == "categorical":
            counts = pd.Series(self.counts[col], dtype=np.int64)
            return pre.fit_vocabulary(col, counts, self.any_missing.get(col, False))
        moments = self.moments[col]
        if moments[0].n == 0:
            return "no value in the training rows"
        if role.role == "datetime":
            parts = [p for p, m in zip(self.parts[col], moments) if p == "days" or m.hi > m.lo]
            pre.dates_[col] = {"format": role.date_format,
                               "parts": {p: m.stats() for p, m in zip(self.parts[col], moments) if p in parts}}
        else:
            pre.numeric_[col] = moments[0].stats(scaled=pre.standardize)
        m = moments[0]
        if m.missing:
            pre.indicators_.append(col)
        elif m.lo == m.hi:
            if role.role == "datetime":
                return f"always {self.first_seconds[col]} in the training rows"
            value = ("true" if m.first else "false") if role.role == "boolean" else _plain_text(m.first)
            return f"always {value} in the training rows"
        return None

    def _finish_target(self, k: int, enc: TargetEncoder) -> TargetEncoder:
        kind = enc.task.kind
        if kind in ("binary", "multiclass"):
            plain = set(self.classes[k].values())
            try:
                enc.classes_ = sorted(plain)
            except TypeError:
                enc.classes_ = sorted(plain, key=str)
        elif kind == "regression":
            enc.mean_, enc.std_ = [], []
            scaled = enc.standardize and enc.task.output == "linear"
            for col, m in zip(enc.task.columns, self.targets[k]):
                if m.n == 0:
                    raise PolytaskError(f"task '{enc.task.name}' has no labels in the training rows (column '{col}')")
                sd = math.sqrt(max(m.m2, 0.0) / m.n)
                enc.mean_.append(m.mean if scaled else 0.0)
                enc.std_.append((sd if sd > 0 else 1.0) if scaled else 1.0)
        return enc

    def exact_medians(self) -> bool:
        """Whether every median is exact (no column had more training values than the sample)."""
        return all(m.exact_median for ms in self.moments.values() for m in ms)


class _Rows:
    """Names a row of a batch as ``file 'x', row N`` (N counted from 1 in the file)."""

    def __init__(self, where: str, first_row: int) -> None:
        self.where, self.first_row = where, first_row

    def name(self, position: int) -> str:
        return f"{self.where}, row {self.first_row + position + 1}"


__all__ = ["MEDIAN_SAMPLE", "Moments", "StreamStats"]
