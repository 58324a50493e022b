"""Settings of training on data read as a stream (``polytask fit DATA --stream``), declared once
with :func:`polytask.settings.option` like :class:`~polytask.data.config.DataConfig`.

They describe files, so they are command-line and Python settings only: the scikit-learn
estimators take arrays already in memory (``in_sklearn=False``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from polytask.errors import PolytaskError
from polytask.settings import option


@dataclass
class StreamConfig:
    """How a table larger than memory is read, split and shuffled (see :mod:`polytask.data.streaming`)."""

    stream: bool = option(False, kind="flag", in_sklearn=False,
                          help="Read DATA (a Parquet file, a directory of Parquet files, or CSV) in record batches "
                               "instead of loading it whole.")
    row_id: str | None = option(None, in_sklearn=False,
                                help="With --stream: column whose hashed value decides each row's split (default: "
                                     "the row's file name and position).")
    split_column: str | None = option(None, in_sklearn=False,
                                      help="With --stream: column naming each row's split (train, val or test).")
    shuffle_buffer: int = option(65536, in_sklearn=False,
                                 help="With --stream: rows shuffled together in the seeded buffer (1: file order).")
    read_rows: int = option(65536, in_sklearn=False, help="With --stream: rows per record batch read.")
    prefetch: int = option(2, in_sklearn=False,
                           help="With --stream: record batches read and encoded ahead by a background thread "
                                "while the network trains (0: none).")
    median_sample: int = option(100_000, in_sklearn=False,
                                help="With --stream: values kept per column for its median (exact up to this many).")
    metric_rows: int = option(1_000_000, in_sklearn=False,
                              help="With --stream: validation and test metrics on at most this many rows of each "
                                   "split (file order; the outputs and labels are held for them).")
    role_rows: int = option(100_000, in_sklearn=False,
                            help="With --stream: first rows read to infer column roles and task kinds.")

    def __post_init__(self) -> None:
        for name, least in (("shuffle_buffer", 1), ("read_rows", 1), ("median_sample", 1), ("role_rows", 1), ("metric_rows", 1),
                            ("prefetch", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise PolytaskError(f"--{name.replace('_', '-')} must be a whole number of at least {least}, got {value!r}")
        if self.row_id and self.split_column:
            raise PolytaskError("give --row-id or --split-column, not both")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["StreamConfig"]
