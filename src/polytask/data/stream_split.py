"""Train / validation / test membership decided row by row, without the whole table.

Each row gets a key: the hash of its value in a row-id column the user names (``row_id``), or
else of its address (the file's name without its suffix, and the row's position in that file, so
a directory converted from CSV to Parquet keeps its split). The key is mixed
with the seed by SplitMix64 and read as a number ``u`` in [0, 1): the row is a test row when
``u < test_fraction``, a validation row when ``u < test_fraction + val_fraction``, else a
training row. The same seed, files and fractions give the same split on any machine and in any
reading order; a row-id split also survives re-partitioning the files. A ``split_column`` holding
``train``, ``val`` (or ``validation``) and ``test`` gives the membership explicitly instead.
The fractions are expected shares: the counts differ from ``fraction * n`` by about ``sqrt(n)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError

TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = {"train": TRAIN, "val": VAL, "validation": VAL, "test": TEST}
_HASH_KEY = "polytask-split01"  # 16 characters, as pandas' hash_array asks


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser on uint64 (Steele, Lea and Flood 2014): a bijection that mixes bits."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def text_key(text: str) -> int:
    """A stable 64-bit key of a text (a file name)."""
    return int(pd.util.hash_array(np.array([text], dtype=object), hash_key=_HASH_KEY)[0])


@dataclass(frozen=True)
class RowSplit:
    """How rows are assigned: fractions, seed and the column (row id or split) used, if any."""

    val_fraction: float
    test_fraction: float
    seed: int
    row_id: str | None = None
    split_column: str | None = None

    @property
    def method(self) -> str:
        if self.split_column:
            return f"split column '{self.split_column}'"
        if self.row_id:
            return f"hash of row id column '{self.row_id}'"
        return "hash of the row's file name (without suffix) and position in the file"

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "seed": self.seed, "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction, "row_id": self.row_id, "split_column": self.split_column}

    def assign(self, frame: pd.DataFrame, file_name: str, first_row: int, where: str) -> np.ndarray:
        """The split (``TRAIN``, ``VAL``, ``TEST`` as int8) of each row of a batch."""
        if self.split_column:
            return _named(frame[self.split_column], where, first_row)
        file_name = file_name.rsplit(".", 1)[0] if "." in file_name else file_name
        if self.row_id:
            ids = frame[self.row_id]
            if ids.isna().any():
                pos = first_row + int(np.flatnonzero(ids.isna().to_numpy())[0]) + 1
                raise PolytaskError(f"row id column '{self.row_id}' has a missing value ({where}, row {pos})")
            keys = pd.util.hash_array(ids.to_numpy(), hash_key=_HASH_KEY)
        else:
            with np.errstate(over="ignore"):
                base = splitmix64(np.array([text_key(file_name)], dtype=np.uint64))[0]
                keys = np.arange(first_row, first_row + len(frame), dtype=np.uint64) + base
        return self.membership(keys)

    def membership(self, keys: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            mixed = splitmix64(keys.astype(np.uint64) ^ splitmix64(np.array([self.seed], dtype=np.uint64))[0])
        u = (mixed >> np.uint64(11)).astype(np.float64) * 2.0**-53
        out = np.full(len(keys), TRAIN, dtype=np.int8)
        out[u < self.test_fraction + self.val_fraction] = VAL
        out[u < self.test_fraction] = TEST
        return out


def _named(s: pd.Series, where: str, first_row: int) -> np.ndarray:
    text = s.astype("str").str.strip().str.lower()
    codes = text.map(SPLIT_NAMES)
    bad = codes.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise PolytaskError(f"split column '{s.name}' holds '{s.iloc[i]}' ({where}, row {first_row + i + 1}); "
                            "use train, val or test")
    return codes.to_numpy(dtype=np.int8)


__all__ = ["RowSplit", "SPLIT_NAMES", "TEST", "TRAIN", "VAL", "splitmix64"]
