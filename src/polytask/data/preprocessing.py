"""Feature preprocessing, fitted on training rows only and saved with the model as JSON.

Each feature column is encoded by its role (:mod:`polytask.data.columns`):

- numeric: ``z = (x - mean) / std`` with the training mean and standard deviation (std 0 -> 1);
  with ``standardize=False`` numbers and booleans pass through unchanged (mean 0 and std 1 are
  stored, so a saved preprocessor reads the same either way; date parts stay standardized);
- boolean: true = 1, false = 0, then standardized as a number;
- datetime: the parts of :mod:`polytask.data.dates` (``days`` since 1970, year, month, ...
  those not constant in training), each standardized;
- categorical: one-hot over the categories seen in training; with more than ``max_categories``
  the most frequent ones keep an input and the rest share one ``<col>=(other)`` input. A
  category never seen in training encodes as all zeros (or as ``(other)`` where the column has
  one) and is counted: :meth:`FeaturePreprocessor.transform` warns with the counts per column;
- missing values, by ``missing``: ``"impute"`` (default) fills a missing number (or date
  part) with the training median and adds a 0/1 ``<col>__missing`` input for every column
  that had one in training; a missing category encodes as all zeros. ``"error"`` rejects any.
  Infinite values are always rejected: they are a data error, not a missing value.

:meth:`FeaturePreprocessor.encode` writes straight into one preallocated float32 array, a block
of rows at a time (numbers copied, one-hot set, then one vectorised standardization per block),
so its memory is the output plus one column of codes per categorical column. Errors name the
column, the value and the file's line (:class:`polytask.data.rows.RowOrigin`).

It is written by hand rather than with scikit-learn's transformers so that the fitted state is
a few plain numbers that save to JSON and load without unpickling.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from polytask.data import dates
from polytask.data.columns import ColumnRole, arrow_text, infer_roles, missing_cells
from polytask.data.rows import RowOrigin
from polytask.errors import PolytaskError

MissingPolicy = Literal["impute", "error"]
OTHER = "(other)"
#: Rare training categories stored per grouped column (to tell them from unseen ones).
_RARE_STORED = 10_000
_BLOCK_CELLS = 1 << 18  # cells encoded per block of rows


class DataWarning(UserWarning):
    """Something in the data a user would want to know: a dropped column, an unseen category."""


@dataclass
class Unseen:
    """Cells of categorical columns whose category was not seen in training, per column."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def rows(self, column: str) -> int:
        return sum(self.counts.get(column, {}).values())

    def message(self, where: str = "") -> str:
        parts = []
        for col, values in self.counts.items():
            shown = ", ".join(f"{v!r} x{n}" for v, n in sorted(values.items(), key=lambda kv: -kv[1])[:3])
            more = f" and {len(values) - 3} more" if len(values) > 3 else ""
            parts.append(f"'{col}' {self.rows(col)} rows ({shown}{more})")
        return f"categories not seen in training{where}, encoded as no category: " + "; ".join(parts)


@dataclass
class _Slot:
    """Where one input column's encoding goes in the output."""

    column: str
    kind: str
    start: int
    width: int


@dataclass
class FeaturePreprocessor:
    """Encodes feature columns by role as float32 (numbers standardized, dates expanded,
    categories one-hot), fitted on the training rows."""

    missing: MissingPolicy = "impute"
    standardize: bool = True
    columns_: list[str] = field(default_factory=list)
    numeric_: dict[str, dict[str, float]] = field(default_factory=dict)
    categorical_: dict[str, list[str]] = field(default_factory=dict)
    indicators_: list[str] = field(default_factory=list)
    booleans_: list[str] = field(default_factory=list)
    dates_: dict[str, dict[str, Any]] = field(default_factory=dict)
    other_: dict[str, dict[str, Any]] = field(default_factory=dict)
    na_values_: list[str] = field(default_factory=list)
    keep_: list[str] = field(default_factory=list)
    long_format_: dict[str, Any] | None = None
    dropped_: dict[str, str] = field(default_factory=dict)
    max_categories: int = 50
    dates_policy: str = "expand"

    # -- fitting ----------------------------------------------------------------------------
    def fit(self, frame: pd.DataFrame, rows: np.ndarray | None = None, roles: list[ColumnRole] | None = None,
            origin: RowOrigin | None = None, drop_constant: bool = False) -> "FeaturePreprocessor":
        """Fit on ``frame`` (its training ``rows``, default all): the columns of ``roles``
        (default: every column of ``frame``, roles inferred, none dropped). ``drop_constant``:
        leave out (``dropped_``, with the reason) a column with one value or none in ``rows``."""
        if self.missing not in ("impute", "error"):
            raise PolytaskError(f"unknown missing-value policy '{self.missing}' (choose impute or error)")
        origin = origin or RowOrigin.of(frame)
        frame = self.missing_as_nan(frame)
        if roles is None:
            roles = infer_roles(frame, [str(c) for c in frame.columns], explicit=True, origin=origin)
        if not roles:
            raise PolytaskError("no feature columns are left once the targets are removed")
        rows = np.arange(len(frame)) if rows is None else np.asarray(rows)
        self.numeric_, self.categorical_, self.indicators_ = {}, {}, []
        self.booleans_, self.dates_, self.other_, self.dropped_ = [], {}, {}, {}
        for role in roles:
            s = frame[role.name]
            if role.role == "categorical":
                constant = self._fit_categories(role.name, s.iloc[rows])
            elif role.role == "datetime":
                constant = self._fit_dates(role, s, rows, origin)
            elif role.role in ("numeric", "boolean"):
                constant = self._fit_number(role.name, s, rows, origin, role.role == "boolean")
            else:
                constant = "no value in the training rows"
            if constant is None:
                continue
            if drop_constant:
                self._forget(role.name)
                self.dropped_[role.name] = constant
            elif constant.startswith("no value"):
                raise PolytaskError(f"feature column '{role.name}' has no values in the training rows")
        self.columns_ = [r.name for r in roles if r.name not in self.dropped_]
        return self

    def _forget(self, col: str) -> None:
        for table in (self.numeric_, self.categorical_, self.dates_, self.other_):
            table.pop(col, None)
        self.indicators_ = [c for c in self.indicators_ if c != col]
        self.booleans_ = [c for c in self.booleans_ if c != col]

    def _fit_number(self, col: str, s: pd.Series, rows: np.ndarray, origin: RowOrigin, boolean: bool) -> str | None:
        """Fit a numeric (or boolean) column; the reason it is constant, or None."""
        if boolean:
            self.booleans_.append(col)
        x = self._raw(col, s, origin)[rows]
        self._check_cells(col, x, rows, origin)
        nan = np.isnan(x)
        observed = x[~nan] if nan.any() else x
        if observed.size == 0:
            return "no value in the training rows"
        self.numeric_[col] = _stats(observed, scaled=self.standardize)
        if nan.any():
            self.indicators_.append(col)
        elif observed.min() == observed.max():
            value = ("true" if observed[0] else "false") if boolean else _plain_text(observed[0])
            return f"always {value} in the training rows"
        return None

    def _fit_dates(self, role: ColumnRole, s: pd.Series, rows: np.ndarray, origin: RowOrigin) -> str | None:
        col = role.name
        seconds = self._seconds(col, s.iloc[rows], role.date_format, origin, rows)
        nat = np.isnat(seconds)
        if nat.all():
            return "no value in the training rows"
        parts = dates.varying_parts(seconds, self.dates_policy == "ordinal")
        values = dates.date_parts(seconds, parts)
        if self.missing == "error" and nat.any():
            self._check_cells(col, values[:, 0], rows, origin)
        observed = values[~nat]
        self.dates_[col] = {"format": role.date_format, "parts": {p: _stats(observed[:, j]) for j, p in enumerate(parts)}}
        if nat.any():
            self.indicators_.append(col)
        elif np.ptp(observed[:, 0]) == 0:
            return f"always {seconds[0]} in the training rows"
        return None

    def _fit_categories(self, col: str, s: pd.Series) -> str | None:
        miss = missing_cells(s)
        counts = category_text(s[~miss]).value_counts()
        if len(counts) == 0:
            return "no value in the training rows"
        if len(counts) <= self.max_categories:
            self.categorical_[col] = sorted(counts.index.tolist())
        else:
            ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            self.categorical_[col] = sorted(k for k, _ in ranked[: self.max_categories - 1])
            rare = sorted(k for k, _ in ranked[self.max_categories - 1 :])
            self.other_[col] = {"values": rare[:_RARE_STORED], "complete": len(rare) <= _RARE_STORED, "count": len(rare)}
        if len(counts) == 1 and not miss.any():
            return f"always {counts.index[0]!r} in the training rows"
        return None

    def _check_cells(self, col: str, x: np.ndarray, rows: np.ndarray, origin: RowOrigin) -> None:
        if np.isinf(x).any():
            pos = int(rows[np.flatnonzero(np.isinf(x))[0]])
            raise PolytaskError(f"feature column '{col}' has an infinite value ({origin.name(pos)})")
        if self.missing == "error" and np.isnan(x).any():
            pos = int(rows[np.flatnonzero(np.isnan(x))[0]])
            raise PolytaskError(f"feature column '{col}' has a missing value ({origin.name(pos)}) and the "
                                "missing-value policy is 'error'")

    # -- the layout of the output ------------------------------------------------------------
    def _slots(self) -> list[_Slot]:
        slots, start = [], 0
        for col in self.columns_:
            if col in self.dates_:
                kind, width = "datetime", len(self.dates_[col]["parts"])
            elif col in self.numeric_:
                kind, width = ("boolean" if col in self.booleans_ else "numeric"), 1
            else:
                kind, width = "categorical", len(self.categorical_[col]) + (col in self.other_)
            slots.append(_Slot(col, kind, start, width))
            start += width
        return slots

    def _affine(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per output: ``(shift, scale, fill)`` so that ``z = (raw - shift) * scale``, with
        ``fill`` (raw units) for a missing value."""
        n = self.n_outputs
        shift, scale, fill = np.zeros(n, np.float32), np.ones(n, np.float32), np.zeros(n, np.float32)
        for slot in self._slots():
            stats = ([self.numeric_[slot.column]] if slot.kind in ("numeric", "boolean") else
                     list(self.dates_[slot.column]["parts"].values()) if slot.kind == "datetime" else [])
            for j, st in enumerate(stats):
                shift[slot.start + j], scale[slot.start + j], fill[slot.start + j] = st["mean"], 1.0 / st["std"], st["median"]
        return shift, scale, fill

    @property
    def output_names(self) -> list[str]:
        names: list[str] = []
        for slot in self._slots():
            col = slot.column
            if slot.kind == "datetime":
                names.extend(f"{col}:{p}" for p in self.dates_[col]["parts"])
            elif slot.kind == "categorical":
                names.extend(f"{col}={v}" for v in self.categorical_[col])
                if col in self.other_:
                    names.append(f"{col}={OTHER}")
            else:
                names.append(col)
        names.extend(f"{c}__missing" for c in self.indicators_)
        return names

    @property
    def n_outputs(self) -> int:
        return sum(s.width for s in self._slots()) + len(self.indicators_)

    def input_widths(self) -> dict[str, int]:
        """``{column: number of network inputs}`` (its encoding plus a missing indicator)."""
        return {s.column: s.width + (s.column in self.indicators_) for s in self._slots()}

    def roles(self) -> dict[str, str]:
        """``{column: role}`` of the fitted feature columns."""
        return {s.column: s.kind for s in self._slots()}

    # -- encoding ----------------------------------------------------------------------------
    def transform(self, frame: pd.DataFrame, rows: np.ndarray | None = None, origin: RowOrigin | None = None) -> np.ndarray:
        """Encode ``frame`` (which must hold every training feature column) as float32; warns
        (:class:`DataWarning`) with the counts of categories not seen in training."""
        x, unseen = self.encode(frame, rows, origin)
        if unseen:
            warnings.warn(unseen.message(), DataWarning, stacklevel=2)
        return x

    def encode(self, frame: pd.DataFrame, rows: np.ndarray | None = None,
               origin: RowOrigin | None = None) -> tuple[np.ndarray, Unseen]:
        """``(x, unseen)``: the encoded rows ``rows`` of ``frame`` (default all, in order) and
        the unseen categories among them."""
        if not self.columns_:
            raise RuntimeError("FeaturePreprocessor is not fitted")
        absent = [c for c in self.columns_ if c not in frame.columns]
        if absent:
            raise PolytaskError(f"feature column '{absent[0]}' seen in training is missing from the data")
        origin = origin or RowOrigin.of(frame)
        frame = self.missing_as_nan(frame, self.columns_)
        slots = self._slots()
        unseen = Unseen()
        sources = [self._source(slot, frame[slot.column], origin, unseen, rows) for slot in slots]
        n = len(frame) if rows is None else len(rows)
        out = np.empty((n, self.n_outputs), dtype=np.float32)
        affine = self._affine()
        step = max(256, _BLOCK_CELLS // max(1, out.shape[1]))
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            take = slice(r0, r1) if rows is None else rows[r0:r1]
            self._block(out[r0:r1], slots, sources, take, affine, origin, r0, rows)
        return out, unseen

    def _block(self, sub: np.ndarray, slots: list[_Slot], sources: list[Any], take: Any,
               affine: tuple[np.ndarray, np.ndarray, np.ndarray], origin: RowOrigin, r0: int, rows: Any) -> None:
        for slot, src in zip(slots, sources):
            a, b = slot.start, slot.start + slot.width
            if slot.kind == "categorical":
                sub[:, a:b] = 0.0
                codes = src[take]
                known = np.flatnonzero(codes >= 0)
                sub[known, a + codes[known]] = 1.0
            elif slot.kind == "datetime":
                sub[:, a:b] = dates.date_parts(src[take], list(self.dates_[slot.column]["parts"]))
            else:
                sub[:, a] = src[take]
        width = sum(s.width for s in slots)
        sub[:, width:] = 0.0
        if not np.isfinite(sub).all():
            self._repair(sub, slots, width, affine[2], origin, r0, rows, sources, take)
        sub -= affine[0]
        sub *= affine[1]

    def _repair(self, sub: np.ndarray, slots: list[_Slot], width: int, fill: np.ndarray, origin: RowOrigin,
                r0: int, rows: Any, sources: list[Any], take: Any) -> None:
        """Reject infinite values (and missing ones under the ``error`` policy); impute the rest
        and set the missing-value indicators."""
        nan = np.isnan(sub)
        inf = ~nan & ~np.isfinite(sub)
        for bad, what in ((inf, "an infinite value"), (nan if self.missing == "error" else None, "a missing value")):
            if bad is None or not bad.any():
                continue
            r, j = (int(v[0]) for v in np.nonzero(bad))
            k = next(i for i, s in enumerate(slots) if s.start <= j < s.start + s.width)
            pos = r0 + r if rows is None else int(rows[r0 + r])
            tail = " and the missing-value policy is 'error'" if what == "a missing value" else ""
            if what == "an infinite value" and slots[k].kind == "numeric" and np.isfinite(sources[k][take][r]):
                what = f"a value too large for float32 ({sources[k][take][r]:.3g})"
            raise PolytaskError(f"feature column '{slots[k].column}' has {what} ({origin.name(pos)}){tail}")
        starts = {s.column: s.start for s in slots}
        for k, col in enumerate(self.indicators_):
            sub[:, width + k] = nan[:, starts[col]]
        np.copyto(sub, np.broadcast_to(fill, sub.shape), where=nan)

    # -- one column's values, before the block loop ------------------------------------------
    def _source(self, slot: _Slot, s: pd.Series, origin: RowOrigin, unseen: Unseen, rows: Any) -> np.ndarray:
        col = slot.column
        if slot.kind == "categorical":
            return self._codes(col, s, unseen, rows)
        if slot.kind == "datetime":
            return self._seconds(col, s, self.dates_[col]["format"], origin)
        return self._raw(col, s, origin)

    def _raw(self, col: str, s: pd.Series, origin: RowOrigin) -> np.ndarray:
        """A numeric or boolean column as numbers (NaN where missing), a view where it can be."""
        if col in self.booleans_:
            return _booleans(col, s, origin)
        if pd.api.types.is_bool_dtype(s):
            return s.to_numpy(dtype=np.float32, na_value=np.nan)
        if pd.api.types.is_numeric_dtype(s):
            if s.dtype.kind in "fiu" and not isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
                return s.to_numpy()
            return s.to_numpy(dtype=np.float64, na_value=np.nan)
        miss = missing_cells(s)
        x = pd.to_numeric(s.where(~miss), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isnan(x) & ~miss
        if bad.any():
            pos = int(np.flatnonzero(bad)[0])
            raise PolytaskError(f"feature column '{col}' is numeric in training but holds '{s.iloc[pos]}' ({origin.name(pos)})")
        return x

    def _seconds(self, col: str, s: pd.Series, fmt: str | None, origin: RowOrigin, rows: np.ndarray | None = None) -> np.ndarray:
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_datetime64_any_dtype(s):
            pos = int(rows[0]) if rows is not None and len(rows) else 0
            raise PolytaskError(f"feature column '{col}' holds dates in training but numbers here ({origin.name(pos)})")
        parsed = dates.parse(s, fmt)
        bad = parsed.isna().to_numpy() & ~missing_cells(s)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            pos = int(rows[r]) if rows is not None else r
            raise PolytaskError(f"feature column '{col}' holds '{s.iloc[r]}' ({origin.name(pos)}), which is not a date "
                                f"in the column's format ({fmt or 'ISO 8601'})")
        return dates.to_seconds(parsed)

    def _codes(self, col: str, s: pd.Series, unseen: Unseen, rows: Any) -> np.ndarray:
        """Category index per row: -1 for missing (and unseen without an ``(other)`` input)."""
        cats = self.categorical_[col]
        miss = missing_cells(s)
        numeric = pd.to_numeric(pd.Series(cats, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
        by_number = (pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)
                     and not np.isnan(numeric).any() and len(set(numeric.tolist())) == len(cats))
        if by_number:
            codes = pd.Index(numeric).get_indexer(s.to_numpy(dtype=np.float64, na_value=np.nan))
            text = None
        else:
            text = category_text(s)
            found = pc.index_in(arrow_text(text), value_set=pa.array(cats, type=pa.string()))
            codes = found.fill_null(-1).to_numpy(zero_copy_only=False)
        codes = np.where(miss, -1, codes).astype(np.int32)
        outside = (codes < 0) & ~miss
        if rows is not None:
            inside = np.zeros(len(s), dtype=bool)
            inside[rows] = True
            outside &= inside
        if outside.any():
            self._count_unseen(col, category_text(s[outside]) if text is None else text[outside], unseen)
            if col in self.other_:
                codes[outside] = len(cats)
        return codes

    def _count_unseen(self, col: str, values: pd.Series, unseen: Unseen) -> None:
        counts = values.value_counts()
        rare = self.other_.get(col)
        if rare is not None:
            if not rare["complete"]:
                return  # too many rare categories were stored to tell them apart
            counts = counts[~counts.index.isin(rare["values"])]
        if len(counts):
            unseen.counts[col] = {str(k): int(v) for k, v in counts.items()}

    def missing_as_nan(self, frame: pd.DataFrame, columns: list[str] | None = None) -> pd.DataFrame:
        """``frame`` with the ``na_values`` texts as missing values (a shallow copy when any)."""
        if not self.na_values_:
            return frame
        out = frame.copy(deep=False)
        for col in columns if columns is not None else list(out.columns):
            s = out[col]
            if s.dtype == object or pd.api.types.is_string_dtype(s):
                out[col] = s.where(~s.astype("str").str.strip().isin(self.na_values_))
        return out

    # -- JSON ------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "missing": self.missing,
            "standardize": self.standardize,
            "columns": self.columns_,
            "numeric": self.numeric_,
            "categorical": self.categorical_,
            "indicators": self.indicators_,
            "booleans": self.booleans_,
            "dates": self.dates_,
            "other": self.other_,
            "na_values": self.na_values_,
            "keep": self.keep_,
            "long_format": self.long_format_,
            "max_categories": self.max_categories,
            "dates_policy": self.dates_policy,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeaturePreprocessor":
        """The fitted preprocessor :meth:`to_dict` described (older models lack the newer keys)."""
        pre = cls(
            missing=d["missing"],
            standardize=bool(d.get("standardize", True)),
            columns_=[str(c) for c in d["columns"]],
            numeric_={str(k): {s: float(x) for s, x in v.items()} for k, v in d["numeric"].items()},
            categorical_={str(k): [str(c) for c in v] for k, v in d["categorical"].items()},
            indicators_=[str(c) for c in d["indicators"]],
            booleans_=[str(c) for c in d.get("booleans", [])],
            dates_={str(k): {"format": v.get("format"), "parts": {p: {s: float(x) for s, x in st.items()}
                                                                  for p, st in v["parts"].items()}}
                    for k, v in d.get("dates", {}).items()},
            other_={str(k): dict(v) for k, v in d.get("other", {}).items()},
            na_values_=[str(v) for v in d.get("na_values", [])],
            keep_=[str(c) for c in d.get("keep", [])],
            long_format_=d.get("long_format"),
            max_categories=int(d.get("max_categories", 50)),
            dates_policy=str(d.get("dates_policy", "expand")),
        )
        unknown = [c for c in pre.columns_ if c not in pre.numeric_ and c not in pre.categorical_ and c not in pre.dates_]
        if unknown:
            raise ValueError(f"feature column '{unknown[0]}' has no encoding")
        return pre


def _plain_text(v: Any) -> str:
    """A number as a user wrote it: ``3`` for 3.0, six significant digits for a float32."""
    v = v.item() if isinstance(v, np.generic) else v
    if isinstance(v, float):
        return str(int(v)) if v.is_integer() else f"{v:.6g}"
    return str(v)


def _stats(observed: np.ndarray, scaled: bool = True) -> dict[str, float]:
    """Mean, standard deviation (0 -> 1) and median; with ``scaled=False`` mean 0 and sd 1 (the
    values pass through unchanged) and the median still fills missing values."""
    std = float(observed.std(dtype=np.float64))
    if not scaled:
        return {"mean": 0.0, "std": 1.0, "median": float(np.median(observed))}
    return {"mean": float(observed.mean(dtype=np.float64)), "std": std if std > 0 else 1.0,
            "median": float(np.median(observed))}


def category_text(s: pd.Series) -> pd.Series:
    """Category keys as text; whole numbers read as floats are written as integers (``1.0`` and
    ``1`` are one category, whichever way a file was parsed)."""
    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        return s.astype("str")
    x = s.to_numpy(dtype=np.float64, na_value=np.nan)
    whole = np.isfinite(x) & (x == np.round(x))
    text = pd.Series(x, index=s.index).astype("str")
    if whole.any():
        text[whole] = pd.Series(x[whole].astype(np.int64)).astype("str").to_numpy()
    return text


def _booleans(col: str, s: pd.Series, origin: RowOrigin) -> np.ndarray:
    """True/false cells as 1/0 (NaN where missing); 0/1 numbers are accepted too."""
    if pd.api.types.is_bool_dtype(s):
        return s.to_numpy(dtype=np.float32, na_value=np.nan)
    miss = missing_cells(s)
    if pd.api.types.is_numeric_dtype(s):
        x = s.to_numpy(dtype=np.float32, na_value=np.nan)
        bad = ~miss & ~np.isin(x, (0.0, 1.0))
    else:
        text = s.astype("str").str.strip().str.lower()
        x = np.where(text.eq("true"), 1.0, np.where(text.eq("false"), 0.0, np.nan)).astype(np.float32)
        bad = ~miss & np.isnan(x)
    if bad.any():
        pos = int(np.flatnonzero(bad)[0])
        raise PolytaskError(f"feature column '{col}' is true/false in training but holds '{s.iloc[pos]}' ({origin.name(pos)})")
    return np.where(miss, np.nan, x).astype(np.float32)
