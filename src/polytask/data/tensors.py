"""Tensors for training: encoded features plus, per task, targets and a label mask."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from polytask.data.preprocessing import FeaturePreprocessor, Unseen
from polytask.data.rows import RowOrigin
from polytask.data.targets import TargetEncoder
from polytask.losses import loss_group


@dataclass
class TaskTensors:
    """Features ``x`` (n, p) and, per task name, ``targets`` (n, d_t) and ``masks`` (n, d_t) bool."""

    x: torch.Tensor
    targets: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, rows: np.ndarray | torch.Tensor | Sequence[int]) -> "TaskTensors":
        idx = torch.as_tensor(np.asarray(rows), dtype=torch.long)
        return TaskTensors(
            self.x[idx],
            {k: v[idx] for k, v in self.targets.items()},
            {k: v[idx] for k, v in self.masks.items()},
        )

    def to(self, device: torch.device | str) -> "TaskTensors":
        return TaskTensors(
            self.x.to(device),
            {k: v.to(device) for k, v in self.targets.items()},
            {k: v.to(device) for k, v in self.masks.items()},
        )

    def labelled_rows(self, task: str) -> torch.Tensor:
        """Indices of the rows with at least one observed label of ``task``."""
        return self.masks[task].any(dim=1).nonzero().reshape(-1)

    def only(self, task: str) -> "TaskTensors":
        """The rows that label ``task``, with that task's targets alone."""
        rows = self.labelled_rows(task)
        return TaskTensors(self.x[rows], {task: self.targets[task][rows]}, {task: self.masks[task][rows]})

    def labels_disjoint(self) -> bool:
        """True when no row labels two tasks (the multi-input setting: each task has its own rows)."""
        if not self.masks:
            return False
        per_row = sum(m.any(dim=1).to(torch.int32) for m in self.masks.values())
        return bool((per_row <= 1).all())

    def label_counts(self) -> dict[str, int]:
        """Rows with at least one observed label, per task."""
        return {k: int(m.any(dim=1).sum()) for k, m in self.masks.items()}


def to_tensors(
    frame: pd.DataFrame,
    preprocessor: FeaturePreprocessor,
    encoders: Sequence[TargetEncoder],
    with_targets: bool = True,
    rows: np.ndarray | None = None,
    origin: RowOrigin | None = None,
) -> TaskTensors:
    """Encode rows ``rows`` of ``frame`` (default all, in order) with fitted preprocessing and
    target encoders (unseen categories warn, see :meth:`FeaturePreprocessor.transform`)."""
    x = torch.from_numpy(preprocessor.transform(frame, rows, origin))
    return TaskTensors(x, *_targets(frame, encoders if with_targets else (), rows, origin))


def encode_rows(
    frame: pd.DataFrame,
    preprocessor: FeaturePreprocessor,
    encoders: Sequence[TargetEncoder],
    rows: np.ndarray,
    origin: RowOrigin | None = None,
) -> tuple[TaskTensors, Unseen]:
    """As :func:`to_tensors`, returning the unseen categories instead of warning about them."""
    x, unseen = preprocessor.encode(frame, rows, origin)
    return TaskTensors(torch.from_numpy(x), *_targets(frame, encoders, rows, origin)), unseen


def _targets(frame: pd.DataFrame, encoders: Sequence[TargetEncoder], rows: np.ndarray | None,
             origin: RowOrigin | None) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Per task, targets and masks as column views of one float32 and one bool matrix, the
    tasks' columns in the order the loss reads them (:func:`block_order`), so that packing them
    for training copies nothing (:meth:`polytask.losses.LossPlan.pack`)."""
    if not encoders:
        return {}, {}
    n = len(frame) if rows is None else len(rows)
    width = sum(enc.target_width for enc in encoders)
    y_block, m_block = np.zeros((n, width), np.float32), np.zeros((n, width), bool)
    views: dict[str, slice] = {}
    at = 0
    for enc in block_order(encoders):
        y, m = enc.encode(frame, rows, origin)
        cols = slice(at, at + enc.target_width)
        y_block[:, cols], m_block[:, cols] = y, m
        views[enc.task.name] = cols
        at = cols.stop
    ys, ms = torch.from_numpy(y_block), torch.from_numpy(m_block)
    names = [enc.task.name for enc in encoders]
    return {k: ys[:, views[k]] for k in names}, {k: ms[:, views[k]] for k in names}


def block_order(encoders: Sequence[TargetEncoder]) -> list[TargetEncoder]:
    """The encoders with the tasks of each loss group side by side, groups in order of first
    appearance (as :class:`~polytask.losses.LossPlan` orders them for networks whose output
    widths are the encoders' ``output_dim``)."""
    groups: dict[tuple[str, int, bool], list[TargetEncoder]] = {}
    for enc in encoders:
        groups.setdefault(loss_group(enc.task, enc.output_dim), []).append(enc)
    return [enc for members in groups.values() for enc in members]


def split_views(tensors: TaskTensors, sizes: Sequence[int]) -> list[TaskTensors]:
    """Consecutive blocks of ``sizes`` rows of ``tensors`` as views (no copy)."""
    out, start = [], 0
    for size in sizes:
        block = slice(start, start + size)
        out.append(TaskTensors(tensors.x[block], {k: v[block] for k, v in tensors.targets.items()},
                               {k: v[block] for k, v in tensors.masks.items()}))
        start += size
    return out
