"""How a CSV file separates its fields and writes its decimals, read from its first 64 KiB.

Fields are separated by ``,`` unless the header is one field with it and more with ``;``, a tab
or ``|`` (the one giving the most fields); a ``.tsv`` file uses tabs. A file separated by
something other than commas writes decimals with a comma (``1,5``) when its first rows hold
numbers written so and none written with a point (``1.5``): spreadsheet exports from locales
with a decimal comma look like that. Both the in-memory reader and ``--stream`` use this, so a
file reads the same either way.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Field separators a CSV file may use, in the order a tie is broken.
DELIMITERS = (",", ";", "\t", "|")
_SNIFF_CHARS = 1 << 16
_COMMA_DECIMAL = re.compile(r"[+-]?(?:\d+,\d*|,\d+)(?:[eE][+-]?\d+)?")
_POINT_DECIMAL = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class CsvDialect:
    """``delimiter``: between fields; ``decimal``: the decimal mark of its numbers."""

    delimiter: str = ","
    decimal: str = "."


def csv_dialect(path: Path) -> CsvDialect:
    """The dialect of the CSV file at ``path`` (see the module docstring); the default one when
    the file cannot be read (the read that follows names the problem)."""
    name = path.name.lower()
    opener: Any = gzip.open if name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
            head = fh.read(_SNIFF_CHARS)
    except (OSError, EOFError):
        return CsvDialect("\t" if name.endswith((".tsv", ".tsv.gz")) else ",")
    delimiter = "\t" if name.endswith((".tsv", ".tsv.gz")) else _delimiter(head)
    return CsvDialect(delimiter, "." if delimiter == "," else _decimal(head, delimiter))


def _records(head: str, delimiter: str) -> list[list[str]]:
    """The records of ``head`` (the last one may be cut short)."""
    try:
        return [r for r in csv.reader(io.StringIO(head), delimiter=delimiter) if r]
    except csv.Error:
        return []


def _delimiter(head: str) -> str:
    counts = {d: len(next(iter(_records(head, d)), [])) for d in DELIMITERS}
    if counts[","] > 1:
        return ","
    best = max(DELIMITERS, key=lambda d: counts[d])  # the first of a tie
    return best if counts[best] > 1 else ","


def _decimal(head: str, delimiter: str) -> str:
    cells = [c.strip() for r in _records(head, delimiter)[1:] for c in r]
    comma = any(_COMMA_DECIMAL.fullmatch(c) for c in cells)
    point = any(_POINT_DECIMAL.fullmatch(c) for c in cells)
    return "," if comma and not point else "."


__all__ = ["DELIMITERS", "CsvDialect", "csv_dialect"]
