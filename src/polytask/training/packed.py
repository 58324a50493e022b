"""Training data with targets and masks packed for the loss: what a step indexes.

A :class:`~polytask.data.tensors.TaskTensors` holds one target and one mask tensor per task;
indexing a batch out of it costs two operations per task. :class:`PackedTensors` holds the
features ``x``, one ``(n, H_y)`` matrix of all targets and one of all masks (float 0/1), laid out
by the :class:`~polytask.losses.LossPlan`, so a batch is three index operations whatever the
number of tasks. When the per-task targets are already column views of one matrix in the plan's
order (as :func:`~polytask.data.prepare.prepare` lays them out), packing copies nothing but the
masks' conversion to float. ``targets`` and ``masks`` give the per-task view back (columns of the
packed matrices) for callbacks that read the batch.
"""

from __future__ import annotations

from typing import Protocol

import torch

from polytask.losses import LossPlan


class TaskData(Protocol):
    """What is packed: features and per-task targets and masks (a ``TaskTensors``)."""

    x: torch.Tensor
    targets: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor]


class PackedTensors:
    """Features ``x`` (n, ...), packed targets ``y`` (n, H_y) and float 0/1 masks ``m`` (n, H_y)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor, plan: LossPlan) -> None:
        self.x, self.y, self.m, self.plan = x, y, m, plan

    @classmethod
    def of(cls, data: TaskData, plan: LossPlan, device: torch.device | None = None) -> "PackedTensors":
        y, m = plan.pack(data.targets, data.masks)
        if device is not None:
            return cls(data.x.to(device), y.to(device), m.to(device), plan)
        return cls(data.x, y, m, plan)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def rows(self, index: torch.Tensor) -> "PackedTensors":
        """The rows ``index`` (a batch)."""
        return PackedTensors(self.x.index_select(0, index), self.y.index_select(0, index),
                             self.m.index_select(0, index), self.plan)

    @property
    def targets(self) -> dict[str, torch.Tensor]:
        return self.plan.unpack(self.y, self.m)[0]

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        return self.plan.unpack(self.y, self.m)[1]
