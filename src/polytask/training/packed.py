"""Training data with targets and masks packed for the loss: what a step indexes.

A :class:`~polytask.data.tensors.TaskTensors` holds one target and one mask tensor per task;
indexing a batch out of it costs two operations per task. :class:`PackedTensors` holds the
features ``x``, one ``(n, H_y)`` matrix of all targets and one of all masks (float 0/1), laid out
by the :class:`~polytask.losses.LossPlan`, so a batch is three index operations whatever the
number of tasks (two with complete labels, below). When the per-task targets are already
column views of one matrix in the plan's order (as :func:`~polytask.data.prepare.prepare` lays
them out), packing copies nothing but the masks' conversion to float. ``targets`` and ``masks`` give the per-task view back (columns of the
packed matrices) for callbacks that read the batch.

Complete labels: when every mask entry is observed (checked once, when packing, on the masks
as given, so no float mask is made), the packed
tensors keep no mask (``mask`` is None): a batch is two index operations and the loss plan
skips the masking (:meth:`~polytask.losses.LossPlan.sums` with ``masks=None``), with the same
values. ``m`` still gives the 0/1 mask (all ones, made when first read) to code that reads it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch

from polytask.losses import LossPlan


class TaskData(Protocol):
    """What is packed: features and per-task targets and masks (a ``TaskTensors``)."""

    x: torch.Tensor
    targets: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]


class PackedTensors:
    """Features ``x`` (n, ...), packed targets ``y`` (n, H_y) and float 0/1 masks ``m`` (n, H_y);
    ``mask`` is the mask as given, None when every label is observed (see the module docstring).

    The tensors are not changed in place once packed (a batch's host copies are kept)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None, plan: LossPlan) -> None:
        self.x, self.y, self.mask, self.plan = x, y, m, plan
        self._host: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None = None

    @classmethod
    def of(cls, data: TaskData, plan: LossPlan, device: torch.device | None = None) -> "PackedTensors":
        """``data`` packed (on ``device`` when given); a mask with every entry observed is dropped."""
        if data.x.shape[0] > 0 and plan.all_observed(data.masks):
            y, mask = plan.pack_targets(data.targets), None
        else:
            y, mask = plan.pack(data.targets, data.masks)
        if device is not None:
            return cls(data.x.to(device), y.to(device), None if mask is None else mask.to(device), plan)
        return cls(data.x, y, mask, plan)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def m(self) -> torch.Tensor:
        """The float 0/1 mask (all ones when ``mask`` is None)."""
        return self.mask if self.mask is not None else torch.ones_like(self.y)

    def rows(self, index: torch.Tensor) -> "PackedTensors":
        """The rows ``index`` (a batch)."""
        mask = None if self.mask is None else self.mask.index_select(0, index)
        return PackedTensors(self.x.index_select(0, index), self.y.index_select(0, index), mask, self.plan)

    def label_counts(self) -> torch.Tensor:
        """The ``(T,)`` number of observed label entries of each task."""
        return self.plan.label_counts(self.mask, len(self.y), self.y.dtype, self.y.device)

    @property
    def targets(self) -> dict[str, torch.Tensor]:
        return self.plan.split(self.y)

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        """Each task's bool mask."""
        return self.plan.split(self.m > 0)

    def host_labels(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Each task's targets and bool mask as numpy arrays on the host (column views of two
        host copies, made once)."""
        if self._host is None:
            y = self.y.cpu().numpy()
            seen = np.ones(y.shape, dtype=bool) if self.mask is None else (self.mask > 0).cpu().numpy()
            self._host = self.plan.split(y), self.plan.split(seen)
        return self._host
