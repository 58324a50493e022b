"""Reading CSV and Parquet files into pandas, a block at a time, in float32.

A CSV file is read a block of rows at a time (pandas' C parser), a Parquet file a group of
columns at a time (pyarrow); each block's numbers go straight into numpy (float columns as
float32, the dtype the network uses; integer columns as the smallest integer type that holds
them, which is exact), so the peak memory of a read is the finished table plus one block.
Columns named in ``exact`` keep float64 and int64 (the ``--keep`` columns copied to predictions).

Headers are checked before any data: a duplicated name is refused (pandas would rename the
second copy ``x.1`` and a copy of a target could leak into the features); an empty name becomes
``Unnamed: i`` as pandas names it. Text that is not UTF-8, nested Parquet types and CSV rows
with more fields than the header are refused with the column or line that is wrong.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from polytask.data.csv_dialect import CsvDialect
from polytask.data.rows import SOURCE_KEY, csv_records
from polytask.errors import PolytaskError, first_line

_PARQUET_GROUP = 32  # Parquet columns read at a time
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check_header(names: list[str], where: str) -> list[str]:
    """Column names as read, refusing a duplicate; an empty name becomes ``Unnamed: i``."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name == "":
            continue
        if name in seen:
            raise PolytaskError(f"{where}: column '{name}' appears twice in the header (columns {seen[name] + 1} "
                                f"and {i + 1}); rename one of them")
        seen[name] = i
    out = [name if name != "" else f"Unnamed: {i}" for i, name in enumerate(names)]
    clash = [n for n in out if out.count(n) > 1]
    if clash:
        raise PolytaskError(f"{where}: column '{clash[0]}' appears twice in the header; rename one of them")
    return out


class _Column:
    """The pieces of one column as blocks arrive: numpy arrays for numbers, arrow arrays else."""

    def __init__(self, name: str, exact: bool) -> None:
        self.name, self.exact = name, exact
        self.numbers: list[np.ndarray] = []
        self.arrow: list[pa.Array] = []
        self.kind = ""  # float, int, bool, null or other (the same in every block)
        self.wide = exact  # keeps float64 (an exact column, or values beyond float32's range)

    def add(self, chunk: pa.Array, where: str) -> None:
        t = chunk.type
        kind = ("float" if pa.types.is_floating(t) else "int" if pa.types.is_integer(t) else "bool"
                if pa.types.is_boolean(t) else "null" if pa.types.is_null(t) else "other")
        if self.kind and kind != self.kind:
            raise pa.ArrowInvalid(f"column type changed between blocks in column '{self.name}'")
        self.kind = kind
        if kind == "null":
            self.numbers.append(np.full(len(chunk), np.nan, dtype=np.float32))
        elif kind == "float":
            self._add_float(chunk.to_numpy(zero_copy_only=False))
        elif kind == "int" or (kind == "bool" and chunk.null_count == 0 and not self.arrow):
            self.numbers.append(chunk.to_numpy(zero_copy_only=False))
        else:
            if kind == "bool" and self.numbers:  # an earlier block had no missing value
                self.arrow = [pa.array(p) for p in self.numbers]
                self.numbers = []
            _check_plain(t, self.name, where, chunk)
            self.arrow.append(chunk)

    def _add_float(self, x: np.ndarray) -> None:
        if self.wide:
            self.numbers.append(x.astype(np.float64, copy=False))
            return
        with np.errstate(over="ignore"):
            small = x.astype(np.float32)
        if np.isinf(small).any() and np.isfinite(x[np.isinf(small)]).any():
            self.wide = True  # a value beyond float32's range: keep the column in float64
            self.numbers = [p.astype(np.float64) for p in self.numbers]
            small = x.astype(np.float64, copy=False)
        self.numbers.append(small)

    def finish(self) -> Any:
        if self.kind == "other" or (self.kind == "bool" and self.arrow):
            return self._finish_arrow()
        parts, self.numbers = self.numbers, []
        if self.kind == "bool":
            return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
        if not parts:
            return np.zeros(0, dtype=np.float32)
        if self.kind == "int":
            return _int_column(parts, self.exact)
        return np.concatenate([p.astype(np.float64 if self.wide else np.float32, copy=False) for p in parts])

    def _finish_arrow(self) -> Any:
        data = pa.chunked_array(self.arrow, type=self.arrow[0].type)
        self.arrow = []
        t = data.type
        if pa.types.is_boolean(t):
            return pd.array(data.to_pandas(), dtype="boolean")
        if pa.types.is_decimal(t):
            return data.cast(pa.float64()).to_numpy().astype(np.float32)
        if pa.types.is_duration(t):
            return data.cast(pa.int64()).to_numpy(zero_copy_only=False) / _per_second(t.unit)
        if pa.types.is_time(t):
            return data.cast(pa.int64() if t.bit_width == 64 else pa.int32()).to_numpy(zero_copy_only=False) / _per_second(t.unit)
        return data.to_pandas(date_as_object=False)


def _per_second(unit: str) -> float:
    return {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]


def _check_plain(t: pa.DataType, name: str, where: str, chunk: pa.Array | None = None) -> None:
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        raise PolytaskError(f"{where}: column '{name}' is not UTF-8 text; save the file as UTF-8")
    if pa.types.is_nested(t):
        raise PolytaskError(f"{where}: column '{name}' holds nested values ({t}); only plain columns are supported")
    if chunk is not None and (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_dictionary(t)):
        try:
            chunk.validate(full=True)
        except pa.ArrowInvalid:
            raise PolytaskError(f"{where}: column '{name}' holds text that is not valid UTF-8") from None


def _int_column(parts: list[np.ndarray], exact: bool) -> np.ndarray:
    """Integers exactly: the smallest integer type that holds them (float where a block had a
    missing value: float32 while every value is within 2**24, else float64)."""
    if any(p.dtype.kind == "f" for p in parts):
        out = np.concatenate([p.astype(np.float64, copy=False) for p in parts])
        finite = out[np.isfinite(out)]
        small = not exact and (finite.size == 0 or float(np.abs(finite).max()) <= 2**24)
        return out.astype(np.float32) if small else out
    out = np.concatenate(parts)
    if exact or out.size == 0 or out.dtype.kind == "u":
        return out
    lo, hi = int(out.min()), int(out.max())
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if info.min <= lo and hi <= info.max:
            return out.astype(dtype)
    return out


def _assemble(names: list[str], columns: list[_Column], source: dict[str, Any]) -> pd.DataFrame:
    data = {}
    for name, col in zip(names, columns):
        data[name] = col.finish()
    frame = pd.DataFrame(data, copy=False)
    frame.attrs[SOURCE_KEY] = source
    return frame


# -- CSV ----------------------------------------------------------------------------------------
_CHUNK_CELLS = 1 << 21  # cells of a CSV read at a time


def read_csv(path: Path, dialect: CsvDialect | None = None, exact: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV file as a DataFrame (see the module docstring); malformed files raise PolytaskError.
    ``dialect``: its separator and decimal mark (default: comma-separated, decimal point).

    pandas' C parser reads a block of rows at a time (on this project's machines it costs less
    CPU than pyarrow's CSV reader); each block's numbers go to float32 at once. A column whose
    blocks disagree (numbers in one, text in another) is read again as text."""
    where = f"file '{path}'"
    dialect = dialect or CsvDialect()
    delimiter, decimal = dialect.delimiter, dialect.decimal
    names = check_header(_header(path, delimiter, where), where)
    _check_last_line(path, delimiter, len(names), where)
    exact = set(exact)
    pieces: list[list[Any]] = [[] for _ in names]
    wide = [n in exact for n in names]
    rows = max(1000, _CHUNK_CELLS // max(1, len(names)))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # pandas would drop the extra fields
            warnings.simplefilter("ignore", pd.errors.DtypeWarning)  # mixed blocks are handled below (_csv_column)
            for chunk in pd.read_csv(path, sep=delimiter, header=0, names=names, chunksize=rows, encoding="utf-8",
                                     index_col=False, decimal=decimal):
                for j, name in enumerate(names):
                    pieces[j].append(_csv_piece(chunk[name], j, wide))
    except PolytaskError:
        raise
    except pd.errors.ParserWarning:
        line = _ragged_line(path, delimiter, len(names))
        raise PolytaskError(f"{where} could not be read as csv: {f'line {line}' if line else 'a line'} has more fields "
                            f"than the header's {len(names)}") from None
    except (ValueError, OSError, EOFError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise PolytaskError(_csv_problem(exc, where)) from None
    data = {name: _csv_column(path, delimiter, j, pieces[j], wide[j], name in exact, where)
            for j, name in enumerate(names)}
    frame = pd.DataFrame(data, copy=False)
    frame.attrs[SOURCE_KEY] = {"format": "csv", "path": str(path), "delimiter": delimiter}
    return _numbers_from_text(frame, decimal)


def _header(path: Path, delimiter: str, where: str) -> list[str]:
    """The header's names exactly as written (pandas would rename a duplicate)."""
    import csv
    import gzip

    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            for record in csv.reader(fh, delimiter=delimiter):
                if record:
                    return record
    except UnicodeDecodeError:
        raise PolytaskError(f"{where} is not UTF-8 text; save the file as UTF-8") from None
    except (OSError, csv.Error, EOFError) as exc:
        raise PolytaskError(f"{where} could not be read as csv: {first_line(exc)}") from None
    raise PolytaskError(f"{where} has no header row")


def _check_last_line(path: Path, delimiter: str, expected: int, where: str) -> None:
    """Refuse a file whose last line has fewer fields than the header (a file cut short: pandas
    would fill the missing fields with NaN). Lines with quotes are not counted."""
    if path.suffix.lower() == ".gz" or expected < 2:
        return
    size = path.stat().st_size
    with open(path, "rb") as fh:
        fh.seek(max(0, size - 65536))
        tail = fh.read()
    lines = tail.rstrip(b"\r\n").rsplit(b"\n", 1)
    last = lines[-1].rstrip(b"\r")
    if len(lines) < 2 and size > 65536 or b'"' in last or not last.strip():
        return
    fields = last.count(delimiter.encode()) + 1
    if fields < expected:
        with open(path, "rb") as fh:
            newlines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
        line = newlines - tail[len(tail.rstrip(b"\r\n")):].count(b"\n") + 1
        raise PolytaskError(f"{where} could not be read as csv: its last line ({line}) has {fields} "
                            f"{'field' if fields == 1 else 'fields'} but the header has {expected}; is the file cut short?")


def _ragged_line(path: Path, delimiter: str, expected: int) -> int | None:
    """The first line whose record has more fields than ``expected`` (for a message only)."""
    return next((line for line, record in csv_records(path, delimiter) if len(record) > expected), None)


def _csv_piece(s: pd.Series, j: int, wide: list[bool]) -> Any:
    """One block of one column: float32 numbers (float64 for wide columns), integers, booleans
    as numpy; text as the Series."""
    kind = s.dtype.kind
    if kind == "f" and not isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        x = s.to_numpy()
        if wide[j]:
            return x
        with np.errstate(over="ignore"):
            small = x.astype(np.float32)
        if np.isinf(small).any() and np.isfinite(x[np.isinf(small)]).any():
            wide[j] = True  # a value beyond float32's range: the column stays float64
            return x
        return small
    if kind in "iub" and not isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        return s.to_numpy()
    return s


def _csv_column(path: Path, delimiter: str, j: int, parts: list[Any], wide: bool, exact: bool, where: str) -> Any:
    if not parts:
        return np.zeros(0, dtype=np.float32)
    texts = [isinstance(p, pd.Series) for p in parts]
    if all(texts):
        return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    if any(texts) or len({p.dtype.kind == "b" for p in parts}) > 1:
        return _reread_as_text(path, delimiter, j, where)
    if parts[0].dtype.kind == "b":
        return np.concatenate(parts)
    if any(p.dtype.kind == "f" for p in parts) and not all(p.dtype.kind == "f" for p in parts):
        return _int_column(parts, exact)
    if parts[0].dtype.kind == "f":
        return np.concatenate([p.astype(np.float64 if wide else np.float32, copy=False) for p in parts])
    return _int_column(parts, exact)


def _reread_as_text(path: Path, delimiter: str, j: int, where: str) -> pd.Series:
    """Column ``j`` read again as text (its blocks disagreed on its type)."""
    try:
        frame = pd.read_csv(path, sep=delimiter, usecols=[j], dtype="str", encoding="utf-8", index_col=False)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise PolytaskError(_csv_problem(exc, where)) from None
    return frame.iloc[:, 0].reset_index(drop=True)


def _csv_problem(exc: BaseException, where: str) -> str:
    """One line for a parse error (pandas names the line of a row with too many fields)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"{where} is not UTF-8 text; save the file as UTF-8"
    text = first_line(exc)
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if m:
        return f"{where} could not be read as csv: line {m.group(2)} has {m.group(3)} fields but the header has {m.group(1)}"
    return f"{where} could not be read as csv: {text.removeprefix('Error tokenizing data. ')}"


def _numbers_from_text(frame: pd.DataFrame, decimal: str = ".") -> pd.DataFrame:
    """Text columns whose every cell is a number once surrounding spaces are removed become
    numbers (the first 64 cells decide whether to look at all); ``decimal``: the file's decimal
    mark."""
    for name in frame.columns:
        s = frame[name]
        if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
            continue
        s = s if decimal == "." else s.where(s.isna(), s.astype("str").str.replace(decimal, ".", regex=False))
        observed = s.dropna().astype("str").str.strip()
        if observed.empty or pd.to_numeric(observed.iloc[:64], errors="coerce").isna().any():
            continue
        if pd.to_numeric(observed, errors="coerce").notna().all():
            values = pd.to_numeric(s.astype("str").str.strip().where(s.notna()), errors="coerce").to_numpy(dtype=np.float64)
            frame[name] = values.astype(np.float32) if np.nanmax(np.abs(values), initial=0) <= _FLOAT32_MAX else values
    return frame


# -- Parquet ------------------------------------------------------------------------------------
def read_parquet(path: Path, exact: Iterable[str] = ()) -> pd.DataFrame:
    """A Parquet file as a DataFrame, a group of columns at a time (pandas index columns that
    pandas wrote are left out)."""
    where = f"file '{path}'"
    exact = set(exact)
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        meta = schema.pandas_metadata or {}
        index_cols = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
        raw = [n for n in schema.names if n not in index_cols]
        names = check_header(raw, where)
        columns = [_Column(n, n in exact) for n in names]
        for start in range(0, len(raw), _PARQUET_GROUP):
            group = raw[start : start + _PARQUET_GROUP]
            table = pf.read(columns=group, use_pandas_metadata=False)
            for j, col in enumerate(columns[start : start + _PARQUET_GROUP]):
                for chunk in table.column(j).chunks:
                    col.add(chunk, where)
            del table
    except PolytaskError:
        raise
    except (pa.ArrowException, OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise PolytaskError(f"{where} could not be read as parquet: {first_line(exc)}") from None
    return _assemble(names, columns, {"format": "parquet", "path": str(path)})


__all__ = ["check_header", "read_csv", "read_parquet"]
