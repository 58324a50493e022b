"""A table too large for memory, read as Arrow record batches: one Parquet file, a directory of
Parquet files, or CSV files (pyarrow's streaming CSV reader, more slowly).

:meth:`StreamSource.batches` yields ``(file index, first row's position in the file, batch)``,
so every row has a stable address (file name, row in file) that a split can hash. The files of
a directory are read in name order and must share one schema (names and types), checked from
their metadata before any data is read; CSV files are read with the types of the first file's
first block (columns the user calls categorical as text, the user's missing-value texts as
missing in every column). A CSV column of whole numbers that holds a decimal (or a number too
large for int64) further down is widened to float64 where that cell is met: the file is read
again from its start with the wider type, the rows already given skipped, and the wider type
kept for the rest of the files and later passes (so an all-integer column stays exact). Each
batch is converted to pandas as :func:`polytask.data.reading.read_parquet` does (floats as
float32 unless beyond float32's range), so the encoders see the same values as on the in-memory
path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from polytask.data.csv_dialect import csv_dialect
from polytask.errors import PolytaskError, first_line

PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_CSV_BLOCK_BYTES = 1 << 22  # what pyarrow's CSV reader reads at a time; the first block sets the types
_CSV_CONVERSION = re.compile(r"In CSV column #(\d+): (?:Row #(\d+): )?CSV conversion error to (\w+): invalid value '(.*)'")


@dataclass(frozen=True)
class StreamSource:
    """The files of one table and their common schema (``names``, ``schema``)."""

    root: Path
    files: tuple[Path, ...]
    kind: str  # parquet or csv
    schema: pa.Schema
    null_values: tuple[str, ...] = ()  # CSV: cell texts read as missing
    widened: dict[str, pa.DataType] = field(default_factory=dict, compare=False, repr=False)  # CSV: wider types met while reading

    @classmethod
    def open(cls, path: str | Path, text_columns: Sequence[str] = (), na_values: Sequence[str] = ()) -> "StreamSource":
        """The files at ``path`` (a file or a directory), their schema checked to agree. CSV only:
        ``text_columns`` are read as text whatever their first rows hold, and ``na_values`` (with
        pyarrow's usual ones such as ``NA`` and the empty cell) as missing values."""
        root = Path(path)
        if not root.exists():
            raise PolytaskError(f"'{root}' does not exist")
        files = _listing(root)
        if files[0].suffix.lower() in PARQUET_SUFFIXES:
            return cls(root, tuple(files), "parquet", _parquet_schema(files))
        nulls = tuple(dict.fromkeys([*pacsv.ConvertOptions().null_values, *na_values]))
        return cls(root, tuple(files), "csv", _csv_schema(files[0], text_columns, nulls), nulls)

    @property
    def names(self) -> list[str]:
        return list(self.schema.names)

    def where(self, file_index: int) -> str:
        return f"file '{self.files[file_index]}'"

    def count_rows(self) -> int | None:
        """Rows in all files from the Parquet metadata (None for CSV)."""
        if self.kind != "parquet":
            return None
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)

    def check_columns(self, columns: Sequence[str], what: str) -> None:
        """Refuse a named column the files do not have, naming the first file."""
        absent = [c for c in columns if c not in self.schema.names]
        if absent:
            raise PolytaskError(f"{what} column '{absent[0]}' is not in {self.where(0)}")

    def batches(self, columns: Sequence[str], rows: int) -> Iterator[tuple[int, int, pa.RecordBatch]]:
        """``(file index, position of the batch's first row in its file, batch)`` of ``columns``."""
        for i, path in enumerate(self.files):
            given = 0  # rows of this file yielded so far (a read again after widening skips them)
            while True:
                try:
                    position = 0
                    for batch in self._file_batches(path, list(columns), rows):
                        start, position = max(given - position, 0), position + batch.num_rows
                        if start < batch.num_rows:
                            part = batch.slice(start) if start else batch
                            yield i, given, part
                            given += part.num_rows
                    break
                except (pa.ArrowException, OSError, ValueError) as exc:
                    if not self._widen(exc):
                        raise PolytaskError(self._problem(i, exc, list(columns))) from None

    def _conversion(self, exc: BaseException) -> tuple[str, str | None, str, str] | None:
        """``(column, line or None, target type, value)`` of a CSV cell pyarrow could not convert."""
        found = _CSV_CONVERSION.search(first_line(exc)) if self.kind == "csv" else None
        if found is None or int(found.group(1)) >= len(self.schema.names):
            return None
        return self.schema.names[int(found.group(1))], found.group(2), found.group(3), found.group(4)

    def _widen(self, exc: BaseException) -> bool:
        """Widen a whole-number CSV column to float64 when ``exc`` is one of its cells holding
        another number; whether it did (then the file is read again)."""
        found = self._conversion(exc)
        if found is None or found[2] != "int64" or not _is_number(found[3]) or found[0] in self.widened:
            return False
        self.widened[found[0]] = pa.float64()
        return True

    def _column_types(self) -> pa.Schema:
        """The CSV columns' types: the first block's, with the widenings met so far."""
        schema = self.schema
        for name, kind in self.widened.items():
            schema = schema.set(schema.get_field_index(name), pa.field(name, kind))
        return schema

    def _problem(self, file_index: int, exc: BaseException, columns: list[str]) -> str:
        """One line on why a file could not be read; a CSV cell that does not fit the type its
        column got from the first block is named with that column, its line and what to do."""
        text, where = first_line(exc), self.where(file_index)
        found = self._conversion(exc)
        if found is None:
            return f"{where} could not be read as {self.kind}: {text}"
        name, line, kind, value = found
        line = line or self._line_of(self.files[file_index], columns)
        kind = {"double": "numbers", "float": "numbers", "int64": "whole numbers", "bool": "true/false values"}.get(kind, kind)
        at = f" (line {line})" if line else " further down"
        return (f"{where}: column '{name}' was read as {kind} from the first rows but holds '{value}'{at}; "
                f"fix or blank that cell, list '{value}' in --na-values, or list the column in --categorical (or --drop)")

    def _line_of(self, path: Path, columns: list[str]) -> str | None:
        """The line of the first cell that fails to convert, read again on one thread (pyarrow's
        threaded reader does not always know the line of a failing cell)."""
        try:
            for _ in self._file_batches(path, columns, 1 << 30, threads=False):
                pass
        except (pa.ArrowException, OSError, ValueError) as exc:
            found = self._conversion(exc)
            return None if found is None else found[1]
        return None

    def _file_batches(self, path: Path, columns: list[str], rows: int, threads: bool = True) -> Iterator[pa.RecordBatch]:
        if self.kind == "parquet":
            yield from pq.ParquetFile(path).iter_batches(batch_size=rows, columns=columns, use_pandas_metadata=False)
            return
        dialect = csv_dialect(path)
        convert = pacsv.ConvertOptions(column_types=self._column_types(), include_columns=columns, null_values=list(self.null_values),
                                       decimal_point=dialect.decimal)
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES, use_threads=threads),
                                parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter), convert_options=convert)
        for batch in reader:
            for start in range(0, batch.num_rows, rows):
                yield batch.slice(start, rows)


def _listing(root: Path) -> list[Path]:
    if root.is_file():
        suffix = root.suffix.lower()
        if suffix not in PARQUET_SUFFIXES + CSV_SUFFIXES:
            raise PolytaskError(f"file '{root}': unsupported format '{suffix}' for --stream (use .parquet or .csv)")
        return [root]
    entries = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    parquet = [p for p in entries if p.suffix.lower() in PARQUET_SUFFIXES]
    csv = [p for p in entries if p.suffix.lower() in CSV_SUFFIXES]
    if parquet and csv:
        raise PolytaskError(f"directory '{root}' holds both Parquet and CSV files ('{parquet[0].name}', "
                            f"'{csv[0].name}'); keep one format")
    if not parquet and not csv:
        raise PolytaskError(f"directory '{root}' holds no Parquet or CSV files")
    return parquet or csv


def _plain_schema(schema: pa.Schema) -> pa.Schema:
    """The schema without pandas' metadata and index columns."""
    meta = schema.pandas_metadata or {}
    index = {c for c in meta.get("index_columns", []) if isinstance(c, str)}
    return pa.schema([f for f in schema if f.name not in index])


def _parquet_schema(files: list[Path]) -> pa.Schema:
    first: pa.Schema | None = None
    for path in files:
        try:
            schema = _plain_schema(pq.read_schema(path))
        except (pa.ArrowException, OSError) as exc:
            raise PolytaskError(f"file '{path}' could not be read as parquet: {first_line(exc)}") from None
        if first is None:
            first = schema
            continue
        if schema.names != first.names:
            extra = sorted(set(schema.names) ^ set(first.names))
            which = f"column '{extra[0]}'" if extra else "the column order"
            raise PolytaskError(f"file '{path}' has other columns than '{files[0]}' ({which} differs); "
                                "every file of a directory must have the same columns")
        for a, b in zip(schema, first):
            if not a.type.equals(b.type):
                raise PolytaskError(f"file '{path}': column '{a.name}' is {a.type}, but {b.type} in '{files[0]}'; "
                                    "every file of a directory must have the same column types")
    assert first is not None
    if len(first.names) == 0:
        raise PolytaskError(f"file '{files[0]}' has no columns")
    return first


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_schema(path: Path, text_columns: Sequence[str], null_values: tuple[str, ...]) -> pa.Schema:
    """The column types pyarrow infers from the first block of the first CSV file (text for
    ``text_columns``)."""
    dialect = csv_dialect(path)
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in text_columns}, null_values=list(null_values),
                                   decimal_point=dialect.decimal)
    try:
        reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                                parse_options=pacsv.ParseOptions(delimiter=dialect.delimiter), convert_options=convert)
        return reader.schema
    except (pa.ArrowException, OSError) as exc:
        raise PolytaskError(f"file '{path}' could not be read as csv: {first_line(exc)}") from None


def batch_frame(batch: pa.RecordBatch) -> pd.DataFrame:
    """A record batch as pandas, floats as float32 where they fit (as the in-memory reader)."""
    frame = batch.to_pandas(date_as_object=False, self_destruct=False)
    for name in frame.columns:
        s = frame[name]
        if s.dtype == np.float64:
            x = s.to_numpy()
            finite = x[np.isfinite(x)]
            if finite.size == 0 or float(np.abs(finite).max()) <= _FLOAT32_MAX:
                frame[name] = x.astype(np.float32)
    return frame


__all__ = ["StreamSource", "batch_frame"]
