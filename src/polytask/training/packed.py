"""Training data with targets and masks packed for the loss: what a step indexes.

A :class:`~polytask.data.tensors.TaskTensors` holds one target and one mask tensor per task;
indexing a batch out of it costs two operations per task. :class:`PackedTensors` holds the
features ``x`` and one ``(n, 2 H_y)`` matrix of all targets then all masks, laid out by the
:class:`~polytask.losses.LossPlan` (float 0/1 masks), so a batch is two index operations
whatever the number of tasks. ``targets`` and ``masks`` give the per-task view back (columns of
the packed matrix) for callbacks that read the batch.
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
    """Features ``x`` (n, ...) and packed targets and masks ``ym`` (n, 2 H_y)."""

    def __init__(self, x: torch.Tensor, ym: torch.Tensor, plan: LossPlan) -> None:
        self.x, self.ym, self.plan = x, ym, plan

    @classmethod
    def of(cls, data: TaskData, plan: LossPlan, device: torch.device | None = None) -> "PackedTensors":
        y, m = plan.pack(data.targets, data.masks)
        x = data.x if device is None else data.x.to(device)
        ym = torch.cat([y, m.to(y.dtype)], 1)
        return cls(x, ym if device is None else ym.to(device), plan)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def y(self) -> torch.Tensor:
        return self.ym[:, : self.plan.target_width]

    @property
    def m(self) -> torch.Tensor:
        return self.ym[:, self.plan.target_width :]

    def rows(self, index: torch.Tensor) -> "PackedTensors":
        """The rows ``index`` (a batch)."""
        return PackedTensors(self.x.index_select(0, index), self.ym.index_select(0, index), self.plan)

    @property
    def targets(self) -> dict[str, torch.Tensor]:
        return self.plan.unpack(self.y, self.m)[0]

    @property
    def masks(self) -> dict[str, torch.Tensor]:
        return self.plan.unpack(self.y, self.m)[1]
