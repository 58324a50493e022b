"""Where a row came from, so that messages name the file's line (header = line 1) rather than a
position in a split.

A table read from a CSV file knows its path; the line of each record is found only when a
message needs it (one scan of the file that follows quoted newlines and skipped blank lines). A
Parquet file has no lines: rows are counted from 1. A DataFrame given in Python is named by its
own index labels.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

#: ``frame.attrs`` key of the source a table was read from (set by :func:`polytask.data.read_table`).
SOURCE_KEY = "polytask.source"


@dataclass
class RowOrigin:
    """How to name row ``i`` of a frame in a message: ``line N`` of a CSV file, ``row N`` of a
    Parquet file, or the frame's own index label."""

    kind: Literal["csv", "parquet", "frame"]
    path: str | None = None
    labels: Any = None  # index labels of a DataFrame given in Python
    delimiter: str = ","
    _lines: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def of(cls, frame: pd.DataFrame) -> "RowOrigin":
        """The origin :func:`read_table` recorded in ``frame.attrs``, else the frame's index."""
        source = frame.attrs.get(SOURCE_KEY)
        if isinstance(source, dict) and source.get("format") in ("csv", "parquet"):
            return cls(source["format"], str(source["path"]), delimiter=str(source.get("delimiter", ",")))
        index = frame.index
        if isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1:
            return cls("frame")
        return cls("frame", labels=np.asarray(index))

    def name(self, position: int) -> str:
        """``line 14`` / ``row 13`` / ``index 'a'`` for row ``position`` (0-based) of the frame."""
        if self.kind == "csv":
            lines = self._csv_lines()
            return f"line {int(lines[position])}" if position < len(lines) else f"record {position + 1}"
        if self.kind == "parquet":
            return f"row {position + 1}"
        if self.labels is not None:
            return f"index {self.labels[position]!r}"
        return f"row {position}"

    def describe(self, positions: Sequence[int] | np.ndarray, limit: int = 3) -> str:
        """``line 5``, ``lines 5, 9 and 12`` or ``lines 5, 9, 12 and 40 more``."""
        pos = [int(p) for p in positions]
        if not pos:
            return ""
        names = [self.name(p) for p in pos[:limit]]
        word = names[0].split(" ")[0]
        shown = [n.split(" ", 1)[1] for n in names]
        plural = {"line": "lines", "row": "rows", "index": "index labels", "record": "records"}[word]
        if len(pos) == 1:
            return names[0]
        if len(pos) <= limit:
            return f"{plural} {', '.join(shown[:-1])} and {shown[-1]}"
        return f"{plural} {', '.join(shown)} and {len(pos) - limit} more"

    def _csv_lines(self) -> np.ndarray:
        if self._lines is None:
            self._lines = csv_record_lines(Path(str(self.path)), self.delimiter)
        return self._lines


def csv_records(path: Path, delimiter: str = ",") -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of each non-blank record of a CSV file, the header first; ``line`` is
    where the record starts (1-based), following quoted newlines. Stops quietly at a file it
    cannot read: it serves messages only."""
    opener: Any = gzip.open if path.suffix.lower() == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
            reader = csv.reader(fh, delimiter=delimiter)
            line = 1
            for record in reader:
                if record:
                    yield line, record
                line = reader.line_num + 1
    except (OSError, csv.Error, EOFError):
        return


def csv_record_lines(path: Path, delimiter: str = ",") -> np.ndarray:
    """The file line (1-based) on which each data record of a CSV file starts, following quoted
    newlines and skipping blank lines as the reader does. Used for messages only."""
    lines = [line for line, _ in csv_records(path, delimiter)]
    return np.asarray(lines[1:], dtype=np.int64)
