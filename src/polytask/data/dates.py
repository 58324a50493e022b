"""Dates as numeric features.

A date column (a datetime type, or text whose cells are dates in one format) becomes numbers
the network can use: ``days`` (days since 1970-01-01, fractional with the time of day, so time
order is kept and future dates extrapolate), and the calendar parts ``year``, ``month``,
``day`` (of month), ``weekday`` (Monday = 0) and ``hour`` (time of day in hours). Parts that are
constant in the training rows (the day of monthly data, the hour of dates without a time) are
left out. Text dates are parsed with one format chosen on the column (``strptime`` codes, saved
with the model so predictions parse the same way); a day/month order that the column cannot
decide is read month first and said so. Time zones are converted to UTC.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

DATE_PARTS = ("days", "year", "month", "day", "weekday", "hour")

_SEP_DATE = r"(\d{4}[-/.]\d{1,2}([-/.]\d{1,2})?|\d{1,2}[-/.]\d{1,2}[-/.](\d{4}|\d{2}))"
_NAMED = r"(\d{1,2}\s+[A-Za-z]{3,9}\.?,?\s+\d{4}|[A-Za-z]{3,9}\.?\s+\d{1,2},?\s+\d{4}|[A-Za-z]{3,9}\.?[\s-]\d{4})"
_TIME = r"([ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*([AaPp][Mm])?)?"
_ZONE = r"\s*(Z|[+-]\d{2}:?\d{2}|UTC)?"
DATE_LIKE = re.compile(rf"^\s*({_SEP_DATE}|{_NAMED}){_TIME}{_ZONE}\s*$")
#: Formats tried besides the ones pandas guesses from the cells (two-digit years, month names).
_EXTRA_FORMATS = ("%m/%d/%y", "%d/%m/%y", "%d.%m.%y", "%b %Y", "%B %Y", "%b-%Y", "%Y-%m")


def looks_like_dates(values: Sequence[str]) -> bool:
    """True when at least half of ``values`` (distinct cells of a text column) look like dates."""
    vals = [str(v) for v in values]
    return bool(vals) and sum(bool(DATE_LIKE.match(v)) for v in vals) >= 0.5 * len(vals)


def parse(values: pd.Series | pd.Index, fmt: str | None) -> pd.Series:
    """``values`` as naive UTC datetimes (NaT where a cell is missing or not in ``fmt``)."""
    s = pd.Series(values, copy=False) if isinstance(values, pd.Index) else values
    if pd.api.types.is_datetime64_any_dtype(s):
        out = pd.to_datetime(s, utc=True)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = pd.to_datetime(s.astype("str").str.strip(), format=fmt or "ISO8601", errors="coerce", utc=True)
    return out.dt.tz_localize(None)


def choose_format(distinct: pd.Index) -> tuple[str | None, int, bool]:
    """The format that parses the most of (a sample of) the ``distinct`` cells: ``(format,
    sample cells parsed, ambiguous)``; ``ambiguous`` when a day-first and a month-first format
    parse the same cells. Candidates: ISO 8601, what pandas guesses from a few cells (month
    first and day first), two-digit years and month names."""
    from pandas.tseries.api import guess_datetime_format

    sample = pd.Index([str(v).strip() for v in distinct[:200]])
    candidates: list[str] = ["ISO8601"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for v in sample[:5]:
            for dayfirst in (False, True):
                fmt = guess_datetime_format(v, dayfirst=dayfirst)
                if fmt and fmt not in candidates:
                    candidates.append(fmt)
    candidates += [f for f in _EXTRA_FORMATS if f not in candidates]
    counts = {f: int(parse(sample, f).notna().sum()) for f in candidates}
    best = max(candidates, key=lambda f: counts[f])  # first of the best: ISO, then month first
    swapped = _swap_day_month(best)
    if swapped == best:
        return best, counts[best], False
    if swapped not in counts:
        counts[swapped] = int(parse(sample, swapped).notna().sum())
    if counts[swapped] == counts[best] and len(distinct) > len(sample):  # the rest of the column may decide
        full = {f: int(parse(distinct, f).notna().sum()) for f in (best, swapped)}
        best = max((best, swapped), key=lambda f: full[f])
        return best, counts[best], full[best] == full[_swap_day_month(best)]
    return best, counts[best], counts[swapped] == counts[best]


def _swap_day_month(fmt: str) -> str:
    return fmt.replace("%m", "\0").replace("%d", "%m").replace("\0", "%d")


def to_seconds(dt: pd.Series) -> np.ndarray:
    """Naive datetimes as ``datetime64[s]`` (NaT kept)."""
    return dt.to_numpy(dtype="datetime64[s]")


def date_parts(seconds: np.ndarray, parts: Sequence[str]) -> np.ndarray:
    """``(len(seconds), len(parts))`` float64 values of the named parts; NaN where NaT."""
    nat = np.isnat(seconds)
    days = seconds.astype("datetime64[D]")
    months = days.astype("datetime64[M]")
    columns = []
    for part in parts:
        if part == "days":
            v = seconds.astype(np.int64) / 86400.0
        elif part == "year":
            v = days.astype("datetime64[Y]").astype(np.int64) + 1970.0
        elif part == "month":
            v = months.astype(np.int64) % 12 + 1.0
        elif part == "day":
            v = (days - months).astype(np.int64) + 1.0
        elif part == "weekday":
            v = (days.astype(np.int64) + 3) % 7 + 0.0  # 1970-01-01 was a Thursday
        elif part == "hour":
            v = (seconds - days).astype(np.int64) / 3600.0
        else:
            raise ValueError(f"unknown date part '{part}'")
        columns.append(np.where(nat, np.nan, v))
    return np.stack(columns, axis=1) if columns else np.zeros((len(seconds), 0))


def varying_parts(seconds: np.ndarray, ordinal_only: bool) -> list[str]:
    """The parts to use: ``days`` always; each calendar part unless constant in ``seconds``."""
    if ordinal_only:
        return ["days"]
    values = date_parts(seconds[~np.isnat(seconds)], DATE_PARTS[1:])
    keep = [p for j, p in enumerate(DATE_PARTS[1:]) if values.size and np.ptp(values[:, j]) > 0]
    return ["days", *keep]
