"""A table larger than memory, prepared and batched without loading it whole.

:func:`prepare_stream` reads the files once: the first ``role_rows`` rows decide the column
roles and task kinds (as :func:`polytask.data.prepare.prepare` decides them on the whole table),
then one pass over every record batch assigns each row its split
(:class:`~polytask.data.stream_split.RowSplit`) and fits the preprocessing and target encoders
on the training rows (:class:`~polytask.data.stream_stats.StreamStats`). The fitted state is the
in-memory path's, so a model trained this way saves and predicts as any other.

:class:`StreamDataset` is a torch ``IterableDataset`` over the record batches of one split: each
batch is encoded (float32 features, per-task targets and masks) and, for training, rows are
shuffled inside a buffer of ``shuffle_buffer`` rows: the buffer is filled, permuted, its full
batches emitted and the remainder kept for the next fill. The permutations come from one
generator seeded with the training seed and drawn on from epoch to epoch, as the trainer draws
its batch order; so when the buffer holds every training row, the batches are exactly those of
the in-memory path on the same rows and seed (in DataLoader workers the generator is seeded
by the seed, the epoch and the worker instead). Memory is the buffer plus one record batch, whatever the
number of rows. It yields :class:`~polytask.data.tensors.TaskTensors` batches, the batch format
:meth:`polytask.training.Trainer.fit` takes from any ``DataLoader``. With several DataLoader
workers, worker ``k`` of ``n`` reads record batches ``k, k + n, ...``.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, IterableDataset

from polytask.data.columns import infer_roles, missing_cells
from polytask.data.config import DataConfig
from polytask.data.prepare import _candidates, bound_outputs, column_report, resolve_tasks
from polytask.data.preprocessing import FeaturePreprocessor, Unseen
from polytask.data.report import ColumnReport, issue
from polytask.data.stream_config import StreamConfig
from polytask.data.stream_source import StreamSource, batch_frame
from polytask.data.stream_split import TEST, TRAIN, VAL, RowSplit
from polytask.data.stream_stats import StreamStats, _Rows
from polytask.data.targets import KindInference, TargetEncoder, validate_targets
from polytask.data.tensors import TaskTensors, split_views
from polytask.errors import PolytaskError
from polytask.tasks import Task, TaskSet, TaskSource

SPLIT_CODES = {"train": TRAIN, "val": VAL, "test": TEST}


@dataclass
class StreamPrepared:
    """A streamed problem: its files, tasks, fitted preprocessing, split rule and row counts."""

    source: StreamSource
    tasks: list[Task]
    preprocessor: FeaturePreprocessor
    encoders: list[TargetEncoder]
    split: RowSplit
    rows: dict[str, int]
    config: StreamConfig
    columns: ColumnReport = field(default_factory=ColumnReport)
    exact_medians: bool = True

    @property
    def output_dims(self) -> dict[str, int]:
        return {e.task.name: e.output_dim for e in self.encoders}

    @property
    def n_features(self) -> int:
        return self.preprocessor.n_outputs

    @property
    def read_columns(self) -> list[str]:
        """The columns a batch needs: features, targets and the split's own column."""
        cols = list(self.preprocessor.columns_) + [c for t in self.tasks for c in t.columns]
        cols += [c for c in (self.split.row_id, self.split.split_column) if c]
        return list(dict.fromkeys(cols))

    def dataset(self, split: str, batch_size: int, seed: int = 0, shuffle: bool | None = None) -> "StreamDataset":
        """The batches of ``split`` (``train``, ``val`` or ``test``); training rows shuffle by default."""
        return StreamDataset(self, SPLIT_CODES[split], batch_size, seed, split == "train" if shuffle is None else shuffle)

    def loader(self, split: str, batch_size: int, seed: int = 0, shuffle: bool | None = None,
               num_workers: int = 0) -> DataLoader:
        """A ``DataLoader`` over :meth:`dataset` (its batches are already formed: ``batch_size=None``)."""
        return DataLoader(self.dataset(split, batch_size, seed, shuffle), batch_size=None, num_workers=num_workers)

    def fingerprint(self) -> str:
        """What a resumed run checks it trains on the same data: each file's name, size and
        modification time, the split and its row counts (a hash, not of the contents: reading
        every byte again would cost a pass over the data)."""
        files = [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in self.source.files]
        record = json.dumps({"files": files, "split": self.split.to_dict(), "rows": self.rows}, sort_keys=True, default=str)
        return "stream:" + hashlib.sha256(record.encode("utf-8")).hexdigest()

    def split_record(self) -> dict[str, Any]:
        return {**self.split.to_dict(), "rows": dict(self.rows), "files": [str(f) for f in self.source.files],
                "exact_medians": self.exact_medians}


def _sample(source: StreamSource, rows: int, read_rows: int) -> pd.DataFrame:
    """The first ``rows`` rows of the table (for roles and task kinds)."""
    parts, n = [], 0
    for _, _, batch in source.batches(source.names, min(rows, read_rows)):
        parts.append(batch_frame(batch))
        n += batch.num_rows
        if n >= rows:
            break
    if not parts:
        raise PolytaskError(f"{source.where(0)} has no data rows" if len(source.files) == 1
                            else f"the files in '{source.root}' have no data rows")
    frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    return frame.iloc[:rows]


def prepare_stream(data: str | Path, tasks: TaskSource, config: DataConfig | None = None,
                   stream: StreamConfig | None = None, *, seed: int = 0) -> StreamPrepared:
    """Roles and kinds from the first rows, then the split and every statistic in one pass
    (see the module docstring); warnings as :func:`~polytask.data.prepare.prepare` issues them."""
    config, stream = config or DataConfig(), stream or StreamConfig(stream=True)
    text = (*(config.categorical or ()), *(config.drop or ()))  # read as text: a dropped column's cells never stop the run
    source = StreamSource.open(data, text_columns=text, na_values=config.na_values or ())
    split = RowSplit(config.val_fraction, config.test_fraction, seed if config.split_seed is None else config.split_seed,
                     stream.row_id, stream.split_column)
    for name, what in ((split.row_id, "--row-id"), (split.split_column, "--split-column")):
        if name:
            source.check_columns([name], what)
    sample = _sample(source, stream.role_rows, stream.read_rows)
    pre = FeaturePreprocessor(missing=config.missing, standardize=config.standardize_inputs,
                              max_categories=config.max_categories, dates_policy=config.dates,
                              na_values_=list(config.na_values), keep_=list(config.keep))
    sample = pre.missing_as_nan(sample)
    explained = resolve_tasks(sample, tasks)
    task_list = bound_outputs(list(TaskSet(tuple(t for t, _ in explained))), config.bounded_outputs)
    validate_targets(sample, task_list)
    target_cols = {c for t in task_list for c in t.columns}
    split_cols = {c for c in (split.row_id, split.split_column) if c}
    clash = sorted(split_cols & target_cols)
    if clash:
        raise PolytaskError(f"column '{clash[0]}' is both a target and the split's column")
    candidates = [c for c in _candidates(sample, config, target_cols) if c not in split_cols]
    roles = infer_roles(sample, candidates, categorical=config.categorical, identifiers=config.identifiers,
                        explicit=config.features is not None)
    used = [r for r in roles if r.role not in ("identifier", "constant")]
    encoders = [TargetEncoder(t, standardize=config.standardize_targets) for t in task_list]
    stats = StreamStats(pre, used, encoders, stream.median_sample, seed=split.seed)
    rows, labels = _one_pass(source, split, stats, task_list, pre, stream.read_rows)
    pre, encoders = stats.finish()
    if not used or not pre.columns_:
        raise PolytaskError("no feature columns are left once the targets and the dropped columns are removed")
    for task in task_list:
        if labels[task.name] == 0:
            raise PolytaskError(f"task '{task.name}' has no labels in the training rows")
    report = column_report(roles, pre, explained, encoders, _Labels(labels), config, Unseen())  # type: ignore[arg-type]
    issue(report.warnings)
    return StreamPrepared(source, task_list, pre, encoders, split, rows, stream, report, stats.exact_medians())


class _Labels:
    """Label counts in the form :func:`column_report` reads them."""

    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def label_counts(self) -> dict[str, int]:
        return dict(self.counts)


def _one_pass(source: StreamSource, split: RowSplit, stats: StreamStats, tasks: list[Task],
              pre: FeaturePreprocessor, read_rows: int) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per split and training labels per task, the statistics added batch by batch."""
    columns = [r.name for r in stats.roles] + [c for t in tasks for c in t.columns]
    columns += [c for c in (split.row_id, split.split_column) if c]
    rows = {"train": 0, "val": 0, "test": 0}
    labels = {t.name: 0 for t in tasks}
    for i, first, batch in source.batches(list(dict.fromkeys(columns)), read_rows):
        frame = pre.missing_as_nan(batch_frame(batch))
        member = split.assign(frame, source.files[i].name, first, source.where(i))
        train = member == TRAIN
        for name, code in SPLIT_CODES.items():
            rows[name] += int((member == code).sum())
        stats.add(frame, train, source.where(i), first)
        for t in tasks:
            seen = np.zeros(len(frame), dtype=bool)
            for c in t.columns:
                seen |= ~missing_cells(frame[c])
            labels[t.name] += int((seen & train).sum())
    if sum(rows.values()) == 0:
        raise PolytaskError(f"the files in '{source.root}' have no data rows")
    return rows, labels


class StreamDataset(IterableDataset):
    """Encoded batches of one split of a :class:`StreamPrepared` (see the module docstring)."""

    def __init__(self, prepared: StreamPrepared, code: int, batch_size: int, seed: int, shuffle: bool) -> None:
        super().__init__()
        if batch_size < 1:
            raise PolytaskError(f"batch size must be at least 1, got {batch_size}")
        self.prepared, self.code, self.batch_size = prepared, code, int(batch_size)
        self.seed, self.shuffle = int(seed), bool(shuffle)
        self.order = torch.Generator().manual_seed(self.seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch about to run (the trainer calls it): seeds the shuffle of DataLoader workers,
        whose copy of the dataset cannot carry the generator on from one epoch to the next."""
        self.epoch = int(epoch)

    def fingerprint(self) -> str:
        """The data this dataset reads (:meth:`StreamPrepared.fingerprint`): a checkpoint records it."""
        return self.prepared.fingerprint()

    def state_dict(self) -> dict[str, Any]:
        """Where the shuffle stands (a checkpoint saves it, so a resumed run draws the same orders)."""
        return {"order": self.order.get_state(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.order.set_state(state["order"])
        self.epoch = int(state["epoch"])

    def _generator(self) -> torch.Generator:
        info = torch.utils.data.get_worker_info()
        if info is None:
            return self.order
        return torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_009 + info.id)

    def __len__(self) -> int:
        """Batches in an epoch (the last one may be smaller)."""
        n = self.prepared.rows[next(k for k, v in SPLIT_CODES.items() if v == self.code)]
        return -(-n // self.batch_size)

    def encoded(self) -> Iterator[TaskTensors]:
        """Every row of the split, a record batch at a time, encoded, in file order."""
        p = self.prepared
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for k, (i, first, batch) in enumerate(p.source.batches(p.read_columns, p.config.read_rows)):
            if k % workers != worker:
                continue
            frame = p.preprocessor.missing_as_nan(batch_frame(batch))
            rows = np.flatnonzero(p.split.assign(frame, p.source.files[i].name, first, p.source.where(i)) == self.code)
            if rows.size == 0:
                continue
            origin = _Rows(p.source.where(i), first)
            x, _ = p.preprocessor.encode(frame, rows, origin)  # type: ignore[arg-type]
            targets, masks = {}, {}
            for enc in p.encoders:
                y, m = enc.encode(frame, rows, origin)  # type: ignore[arg-type]
                targets[enc.task.name] = torch.from_numpy(np.ascontiguousarray(y))
                masks[enc.task.name] = torch.from_numpy(np.ascontiguousarray(m))
            yield TaskTensors(torch.from_numpy(x), targets, masks)

    def __iter__(self) -> Iterator[TaskTensors]:
        capacity = max(self.batch_size, self.prepared.config.shuffle_buffer) if self.shuffle else self.batch_size
        rng = self._generator()
        held: list[TaskTensors] = []
        n_held = 0
        for chunk in prefetch(self.encoded(), self.prepared.config.prefetch):
            held.append(chunk)
            n_held += len(chunk)
            if n_held >= capacity:
                buffer = self._mixed(held, rng)
                full = len(buffer) - len(buffer) % self.batch_size
                yield from split_views(buffer, [self.batch_size] * (full // self.batch_size))
                held = [buffer.subset(torch.arange(full, len(buffer)))] if full < len(buffer) else []
                n_held = len(buffer) - full
        if n_held:
            buffer = self._mixed(held, rng)
            sizes = [self.batch_size] * (len(buffer) // self.batch_size)
            yield from split_views(buffer, sizes + ([len(buffer) % self.batch_size] if len(buffer) % self.batch_size else []))

    def _mixed(self, held: list[TaskTensors], rng: torch.Generator) -> TaskTensors:
        """The held rows as one block, permuted when shuffling (one gather; batches are views)."""
        buffer = _concat(held)
        return buffer.subset(torch.randperm(len(buffer), generator=rng)) if self.shuffle else buffer


def prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """``items`` produced by a background thread up to ``depth`` ahead (0: in this thread).

    Reading Parquet and most of numpy's work release the GIL, so the next record batches are
    read and encoded while the network trains on the current one; memory grows by ``depth``
    encoded record batches. An exception in the producer is raised here."""
    if depth < 1:
        yield from items
        return
    box: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(("end", None))
        except BaseException as exc:  # handed to the consumer, which raises it
            box.put(("error", exc))

    worker = threading.Thread(target=produce, name="polytask-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = box.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        while worker.is_alive():
            try:
                box.get_nowait()
            except queue.Empty:
                worker.join(0.05)


def _concat(parts: list[TaskTensors]) -> TaskTensors:
    if len(parts) == 1:
        return parts[0]
    return TaskTensors(torch.cat([p.x for p in parts]), {k: torch.cat([p.targets[k] for p in parts]) for k in parts[0].targets},
                       {k: torch.cat([p.masks[k] for p in parts]) for k in parts[0].masks})


__all__ = ["StreamDataset", "StreamPrepared", "prepare_stream"]
