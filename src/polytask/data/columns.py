"""Column roles: what each candidate feature column is, decided on the whole column, checked on
the training rows, and never by a minority of its cells.

- ``numeric``: numbers (standardized); ``boolean``: true/false (one 0/1 input);
- ``datetime``: a date type, or text that is dates in one format (expanded, :mod:`.dates`);
- ``categorical``: other text (one-hot; a column listed in ``categorical`` even if it holds numbers);
- ``identifier``: a distinct text in (nearly) every row, or integers counting the rows: it
  cannot generalise, so it is dropped with a warning (``identifiers`` policy);
- free text (many distinct cells of several words) is refused: polytask does not encode text;
- ``constant``: no value at all (one value in the training rows is found when the
  preprocessing is fitted); dropped with a warning.

A text column that is numbers except for a few cells (``'?'``, ``'1,234'``, a typo), or dates
except for a few, is an error naming the column and the cells' lines: letting those cells turn a
numeric column into hundreds of one-hot inputs would change the schema silently.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from polytask.data import dates
from polytask.data.rows import RowOrigin
from polytask.errors import PolytaskError

Role = Literal["numeric", "boolean", "categorical", "datetime", "identifier", "constant"]
#: Loosely a number: digits with separators, a sign, a currency sign or a percent.
NUMBER_LIKE = re.compile(r"^\s*[-+(]?\s*[$€£]?\s*\d[\d,.' ]*\s*%?\s*\)?\s*$")
_TRUE_FALSE = {"true", "false"}
#: A text column with at least this share of distinct cells (and 10 observed) is identifier-like.
IDENTIFIER_SHARE = 0.9
#: Free text: distinct cells averaging at least this many words.
TEXT_WORDS = 4


@dataclass(frozen=True)
class ColumnRole:
    """One feature column's role, why it was chosen, and its date format if it is text dates."""

    name: str
    role: Role
    detail: str = ""
    date_format: str | None = None


def missing_cells(s: pd.Series) -> np.ndarray:
    """True where a cell is missing: NaN, None, NaT or blank text."""
    m = s.isna().to_numpy().copy()
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        blank = pc.equal(pc.utf8_trim_whitespace(arrow_text(s)), "").fill_null(False)
        m |= blank.to_numpy(zero_copy_only=False)
    return m


def arrow_text(s: pd.Series) -> pa.Array:
    """A column's cells as an arrow string array (missing cells null; no copy for text that
    pandas already holds in arrow)."""
    if not isinstance(s.dtype, pd.StringDtype) or s.dtype.storage != "pyarrow":
        s = s.astype("str")
    arr = pa.array(s, from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


@dataclass
class Profile:
    """The distinct observed cells of a column: original values, stripped text, counts."""

    values: pd.Index
    keys: pd.Index
    counts: np.ndarray
    _numbers: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, s: pd.Series) -> "Profile":
        observed = s[~missing_cells(s)]
        vc = observed.value_counts(sort=False, dropna=True)
        return cls(vc.index, pd.Index(vc.index.astype("str").str.strip()), vc.to_numpy())

    @property
    def observed(self) -> int:
        return int(self.counts.sum())

    @property
    def distinct(self) -> int:
        return len(self.values)

    def share(self, mask: np.ndarray) -> float:
        return float(self.counts[mask].sum() / max(1, self.observed))

    def numbers(self) -> np.ndarray:
        """Which distinct cells are plain numbers."""
        if self._numbers is None:
            self._numbers = pd.to_numeric(pd.Series(self.keys, dtype="str"), errors="coerce").notna().to_numpy()
        return self._numbers

    def number_like(self) -> np.ndarray:
        """Which distinct cells are numbers or look like numbers (``'1,234'``, ``'12%'``)."""
        like = pd.Series(self.keys, dtype="str").str.match(NUMBER_LIKE.pattern).to_numpy(dtype=bool, na_value=False)
        return self.numbers() | like


def odd_cells_error(s: pd.Series, odd: pd.Index, origin: RowOrigin, what: str, hint: str,
                    role: str = "feature column") -> PolytaskError:
    """``feature column 'x' holds numbers except in 2 cells: '?' (line 5), 'abc' (line 9); <hint>``."""
    positions = np.flatnonzero(s.isin(list(odd)).to_numpy())
    shown = ", ".join(f"{s.iloc[p]!r} ({origin.name(p)})" for p in positions[:3])
    more = f" and {len(positions) - 3} more" if len(positions) > 3 else ""
    cells = "cell" if len(positions) == 1 else "cells"
    if len(positions) == int((~missing_cells(s)).sum()):
        return PolytaskError(f"{role} '{s.name}' holds {what} written in a way polytask does not read: {shown}{more}; {hint}")
    return PolytaskError(f"{role} '{s.name}' holds {what} except in {len(positions)} {cells}: {shown}{more}; {hint}")


def numbers_except(profile: Profile) -> pd.Index | None:
    """The odd distinct cells of a text column that is mostly numbers, else None."""
    plain = profile.numbers()
    if plain.all() or profile.share(profile.number_like()) < 0.5:
        return None
    return profile.values[~plain]


def number_hint(odd: pd.Index) -> str:
    """What to do about cells that are not plain numbers."""
    if any(NUMBER_LIKE.match(str(v)) for v in odd):
        return ("polytask reads numbers with '.' as the decimal point and no thousands separator, currency "
                "or percent sign: rewrite those cells")
    return "fix them, blank them (a missing value) or list them in --na-values"


def infer_roles(frame: pd.DataFrame, columns: list[str], *, categorical: tuple[str, ...] = (), identifiers: str = "drop",
                explicit: bool = False, origin: RowOrigin | None = None) -> list[ColumnRole]:
    """The role of each of ``columns`` (see the module docstring), decided on the whole
    column. ``explicit``: the user listed the features, so none is dropped as an identifier or
    refused as text. (Columns constant in the training rows are found when the preprocessing is
    fitted.)"""
    origin = origin or RowOrigin.of(frame)
    roles = []
    for name in columns:
        role = _role(frame[name], name, name in categorical, identifiers, explicit, origin)
        if role.role == "identifier" and identifiers == "error":
            raise PolytaskError(f"feature column '{name}' looks like an identifier ({role.detail}); drop it with "
                                f"--drop {name}, or keep it for predictions with --keep {name}")
        roles.append(role)
    return roles


def _role(s: pd.Series, name: str, as_category: bool, identifiers: str, explicit: bool, origin: RowOrigin) -> ColumnRole:
    if as_category:
        return ColumnRole(name, "categorical", "declared categorical")
    if isinstance(s.dtype, pd.CategoricalDtype):
        levels = pd.Index(s.cat.categories.astype("str").str.strip().str.lower())
        if len(levels) and levels.isin(_TRUE_FALSE).all():
            return ColumnRole(name, "boolean", "true/false categories")
        return ColumnRole(name, "categorical", "categorical type")
    if pd.api.types.is_bool_dtype(s):
        return ColumnRole(name, "boolean", "true/false")
    if pd.api.types.is_datetime64_any_dtype(s):
        return ColumnRole(name, "datetime", "date type")
    if pd.api.types.is_timedelta64_dtype(s) or pd.api.types.is_complex_dtype(s):
        raise PolytaskError(f"feature column '{name}' has type {s.dtype}, which polytask does not encode; "
                            f"convert it to numbers or --drop {name}")
    if pd.api.types.is_numeric_dtype(s):
        if _counts_rows(s):
            return ColumnRole(name, "identifier", "integers counting the rows")
        return ColumnRole(name, "numeric", "numbers")
    return _text_role(s, name, identifiers, explicit, origin)


def _counts_rows(s: pd.Series) -> bool:
    """Integers that go up by one from row to row: a row number (a written index)."""
    if s.dtype.kind not in "iu" or len(s) < 20:
        return False
    x = s.to_numpy().astype(np.int64)
    return bool((np.diff(x) == 1).all())


def _text_role(s: pd.Series, name: str, identifiers: str, explicit: bool, origin: RowOrigin) -> ColumnRole:
    profile = Profile.of(s)
    if profile.observed == 0:
        return ColumnRole(name, "constant", "every cell is missing")
    odd = numbers_except(profile)
    if odd is not None:
        raise odd_cells_error(s, odd, origin, "numbers", number_hint(odd) + f", or list the column in --categorical")
    if profile.numbers().all():
        return ColumnRole(name, "numeric", "numbers written as text")
    truth = profile.keys.str.lower().isin(_TRUE_FALSE)
    if truth.all():
        return ColumnRole(name, "boolean", "true/false text")
    if profile.share(np.asarray(truth)) >= 0.5:
        raise odd_cells_error(s, profile.values[~np.asarray(truth)], origin, "true/false values",
                              "fix them, blank them (a missing value) or list them in --na-values")
    date_role = _date_role(s, name, profile, origin)
    if date_role is not None:
        return date_role
    many = profile.distinct >= IDENTIFIER_SHARE * profile.observed and profile.observed >= 10
    if many and not explicit:
        words = float(np.mean([len(k.split()) for k in profile.keys[:1000]]))
        if words >= TEXT_WORDS:
            raise PolytaskError(f"feature column '{name}' looks like free text ({profile.distinct} distinct cells of "
                                f"{words:.0f} words on average); polytask does not encode text: --drop {name}")
        detail = f"{profile.distinct} distinct values in {profile.observed} rows"
        if identifiers != "feature":
            return ColumnRole(name, "identifier", detail)
    return ColumnRole(name, "categorical", f"{profile.distinct} categories")


def _date_role(s: pd.Series, name: str, profile: Profile, origin: RowOrigin) -> ColumnRole | None:
    if not dates.looks_like_dates(list(profile.keys[:200])):
        return None
    fmt, _, ambiguous = dates.choose_format(profile.keys)
    parsed = dates.parse(profile.keys, fmt).notna().to_numpy()
    if parsed.all():
        order = "; day/month order ambiguous, read month first" if ambiguous else ""
        return ColumnRole(name, "datetime", f"dates as text ({fmt}{order})", date_format=fmt)
    if profile.share(parsed) >= 0.5:
        raise odd_cells_error(s, profile.values[~parsed], origin, f"dates ({fmt})",
                              "fix them, blank them (a missing value) or list them in --na-values")
    return None
