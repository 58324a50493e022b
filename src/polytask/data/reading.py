"""Reading CSV and Parquet files into pandas with pyarrow, column by column, in float32.

The file is read in blocks (CSV) or groups of columns (Parquet); each block's numbers go
straight into numpy (float columns as float32, the dtype the network uses; integer columns as the
smallest integer type that holds them, which is exact), so the peak memory of a read is the
finished table plus one block. Columns named in ``exact`` keep pyarrow's float64 and int64 (the
``--keep`` columns copied to predictions).

Headers are checked before any data: a duplicated name is refused (pandas would rename the
second copy ``x.1`` and a copy of a target could leak into the features); an empty name becomes
``Unnamed: i`` as pandas names it. Text that is not UTF-8, nested Parquet types and ragged CSV
rows are refused with the column or line that is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from polytask.data.rows import SOURCE_KEY, csv_record_lines
from polytask.errors import PolytaskError

#: Cells read as missing: pyarrow's defaults plus the two pandas also reads as missing.
NULL_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
               "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
_BLOCK = 1 << 22  # CSV block size; the column types are inferred from the first block
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
            _check_plain(t, self.name, where)
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


def _check_plain(t: pa.DataType, name: str, where: str) -> None:
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        raise PolytaskError(f"{where}: column '{name}' is not UTF-8 text; save the file as UTF-8")
    if pa.types.is_nested(t):
        raise PolytaskError(f"{where}: column '{name}' holds nested values ({t}); only plain columns are supported")


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
def read_csv(path: Path, delimiter: str = ",", exact: Iterable[str] = ()) -> pd.DataFrame:
    """A CSV file as a DataFrame (see the module docstring); malformed files raise PolytaskError."""
    where = f"file '{path}'"
    exact = set(exact)
    convert = pcsv.ConvertOptions(null_values=NULL_VALUES, strings_can_be_null=True, quoted_strings_can_be_null=True)
    parse = pcsv.ParseOptions(delimiter=delimiter)
    try:
        try:
            reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=_BLOCK), parse_options=parse,
                                   convert_options=convert)
            names = check_header(list(reader.schema.names), where)
            columns = [_Column(n, n in exact) for n in names]
            for batch in reader:
                for col, chunk in zip(columns, batch.columns):
                    col.add(chunk, where)
        except pa.ArrowInvalid as exc:
            if "conversion error" not in str(exc) and "type changed" not in str(exc):
                raise
            # a later block contradicts the types of the first: read the whole file at once
            table = pcsv.read_csv(path, parse_options=parse, convert_options=convert)
            names = check_header(list(table.column_names), where)
            columns = [_Column(n, n in exact) for n in names]
            for i, col in enumerate(columns):
                for chunk in table.column(i).chunks:
                    col.add(chunk, where)
            del table
    except pa.ArrowInvalid as exc:
        raise PolytaskError(_csv_problem(path, delimiter, str(exc), where)) from None
    except (pa.ArrowException, OSError, EOFError, UnicodeDecodeError) as exc:  # gzip, I/O
        raise PolytaskError(f"{where} could not be read as csv: {_first_line(exc)}") from None
    frame = _assemble(names, columns, {"format": "csv", "path": str(path), "delimiter": delimiter})
    return _numbers_from_text(frame)


_FIELDS = re.compile(r"Expected (\d+) columns, got (\d+)")


def _csv_problem(path: Path, delimiter: str, message: str, where: str) -> str:
    """One line for a parse error: the line whose field count differs from the header's."""
    m = _FIELDS.search(message)
    if m:
        expected, got = int(m.group(1)), int(m.group(2))
        line = _ragged_line(path, delimiter, expected)
        at = f"line {line}" if line else "a line"
        fields = "field" if got == 1 else "fields"
        return f"{where} could not be read as csv: {at} has {got} {fields} but the header has {expected}"
    return f"{where} could not be read as csv: {message.strip().splitlines()[0] if message.strip() else 'parse error'}"


def _ragged_line(path: Path, delimiter: str, expected: int) -> int | None:
    import csv
    import gzip

    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            line = 1
            for record in reader:
                if record and len(record) != expected:
                    return line
                line = reader.line_num + 1
    except (OSError, csv.Error, EOFError):
        return None
    return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _numbers_from_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns whose every cell is a number once surrounding spaces are removed (``a, b``
    headers with ``1, 2`` rows) become numbers, as pandas' reader would read them."""
    for name in frame.columns:
        s = frame[name]
        if not (pd.api.types.is_string_dtype(s) or s.dtype == object):
            continue
        observed = s.dropna()
        head = observed.iloc[:64]
        if observed.empty or pd.to_numeric(head.str.strip() if hasattr(head, "str") else head, errors="coerce").isna().any():
            continue
        numbers = pd.to_numeric(observed.str.strip(), errors="coerce")
        if numbers.notna().all():
            values = pd.to_numeric(s.str.strip(), errors="coerce").to_numpy(dtype=np.float64)
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
        raise PolytaskError(f"{where} could not be read as parquet: {_first_line(exc)}") from None
    return _assemble(names, columns, {"format": "parquet", "path": str(path)})


__all__ = ["NULL_VALUES", "check_header", "csv_record_lines", "read_csv", "read_parquet"]
