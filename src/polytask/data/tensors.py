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
    targets: dict[str, torch.Tensor] = {}
    masks: dict[str, torch.Tensor] = {}
    for enc in encoders:
        y, m = enc.encode(frame, rows, origin)
        targets[enc.task.name] = torch.from_numpy(np.ascontiguousarray(y))
        masks[enc.task.name] = torch.from_numpy(np.ascontiguousarray(m))
    return targets, masks


def split_views(tensors: TaskTensors, sizes: Sequence[int]) -> list[TaskTensors]:
    """Consecutive blocks of ``sizes`` rows of ``tensors`` as views (no copy)."""
    out, start = [], 0
    for size in sizes:
        block = slice(start, start + size)
        out.append(TaskTensors(tensors.x[block], {k: v[block] for k, v in tensors.targets.items()},
                               {k: v[block] for k, v in tensors.masks.items()}))
        start += size
    return out
