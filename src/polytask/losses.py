"""Masked per-task losses, computed one expression per kind of loss.

For task t with per-entry loss ``l`` and label mask ``m`` (1 where the label is observed),
``L_t = sum_i m_i l(f_t(x_i), y_i) / max(1, sum_i m_i)`` (the sums run over rows and over the
task's target columns): a missing label contributes nothing, and a batch with no label for t
gives ``L_t = 0`` (and so no gradient for that task).

The network's outputs come as one packed ``(n, H)`` tensor whose columns an
:class:`OutputLayout` assigns to tasks; targets and masks as packed ``(n, H_y)`` tensors laid out
by a :class:`LossPlan`. Tasks with the same loss and the same output width form a *group*,
whose losses are one expression: element-wise losses (``mse``, ``l1``, ``huber``, ``bce``) on the
group's ``(n, G d)`` block, cross-entropy on ``(n, C, G)`` logits, each followed by one masked
mean per task. So a step costs a few operations whatever the number of tasks.

Complete labels: with no mask (``masks=None``: every entry observed) the masking is skipped,
``L_t = sum_i l_i / (n d_t)``, the same value without the mask's operations, taken as one mean
per group (one reduction instead of a sum and a division).

A regression task with a sigmoid output (``Task.output == "sigmoid"``) is scored on
``sigmoid(f_t(x))``: the head's raw output stays linear and the loss applies the link (tasks
with a sigmoid output form their own groups).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from polytask.tasks import Task

#: Losses computed entry by entry on outputs and targets of the same shape.
ELEMENTWISE = ("mse", "l1", "huber", "bce")


@dataclass(frozen=True)
class OutputLayout:
    """Which columns of a packed ``(n, H)`` output belong to which task: task ``names[i]``
    owns columns ``starts[i] : starts[i] + widths[i]``."""

    names: tuple[str, ...]
    starts: tuple[int, ...]
    widths: tuple[int, ...]

    @classmethod
    def of(cls, widths: Mapping[str, int]) -> "OutputLayout":
        """Tasks side by side in the order of ``widths``."""
        starts, at = [], 0
        for w in widths.values():
            starts.append(at)
            at += int(w)
        return cls(tuple(widths), tuple(starts), tuple(int(w) for w in widths.values()))

    @property
    def width(self) -> int:
        return sum(self.widths)

    def columns(self, name: str) -> slice:
        i = self.names.index(name)
        return slice(self.starts[i], self.starts[i] + self.widths[i])

    def split(self, packed: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's output: a view of its columns."""
        return {n: packed[:, s : s + w] for n, s, w in zip(self.names, self.starts, self.widths)}


def _elementwise(name: str, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if name == "mse":
        return (output - target).square()
    if name == "l1":
        return (output - target).abs()
    if name == "huber":
        return F.huber_loss(output, target, reduction="none", delta=1.0)
    if name == "bce":
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")
    raise ValueError(f"unknown loss '{name}'")  # Task validates names; this guards programmatic misuse


def loss_group(task: Task, output_width: int) -> tuple[str, int, bool]:
    """The group a task's loss is computed in: its loss, output width and output link."""
    return task.loss_name, int(output_width), task.output == "sigmoid"


def column_block(parts: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """The ``(n, sum d_i)`` matrix whose consecutive columns the ``(n, d_i)`` tensors ``parts``
    are (views of one row-major matrix, side by side in order, covering its rows), without a
    copy; None when they are not."""
    first = parts[0]
    width = sum(int(p.shape[1]) for p in parts if p.dim() == 2)
    n, at = int(first.shape[0]), first.storage_offset()
    if n == 0 or first.dim() != 2:
        return None
    base = first.untyped_storage().data_ptr()
    for p in parts:
        if (p.dim() != 2 or p.shape[0] != n or p.dtype != first.dtype or p.device != first.device
                or p.untyped_storage().data_ptr() != base or p.storage_offset() != at
                or (n > 1 and p.stride(0) != width) or (p.shape[1] > 1 and p.stride(1) != 1)):
            return None
        at += int(p.shape[1])
    return first.as_strided((n, width), (width, 1), first.storage_offset())


class _Group:
    """Tasks of one loss, one output width and one output link: task indices, where their
    outputs are, where their packed targets are (per task ``target_width`` columns: the output
    width for element-wise losses, 1, the class index, for cross-entropy)."""

    def __init__(self, loss: str, width: int, tasks: tuple[int, ...], out_columns: tuple[int, ...], target_start: int,
                 target_width: int, total_width: int, sigmoid: bool = False) -> None:
        self.loss, self.width, self.tasks, self.sigmoid = loss, width, tasks, sigmoid
        self.target_start, self.target_width = target_start, target_width
        first = out_columns[0]
        contiguous = out_columns == tuple(range(first, first + len(out_columns)))
        #: The outputs as a slice of the packed columns (None: the whole tensor; see _index).
        self._slice = None if contiguous and len(out_columns) == total_width else slice(first, first + len(out_columns))
        self._index = None if contiguous else torch.tensor(out_columns, dtype=torch.long)

    def outputs(self, packed: torch.Tensor) -> torch.Tensor:
        if self._index is not None:
            if self._index.device != packed.device:
                self._index = self._index.to(packed.device)
            return packed.index_select(1, self._index)
        return packed if self._slice is None else packed[:, self._slice]

    def _elements(self, packed: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The ``(n, G * target_width)`` element-wise losses (per row and class index for
        cross-entropy) of the group's tasks, in the group's order."""
        g = len(self.tasks)
        end = self.target_start + g * self.target_width
        y = targets if self.target_start == 0 and end == targets.shape[1] else targets[:, self.target_start : end]
        out = self.outputs(packed)
        if self.sigmoid:
            out = torch.sigmoid(out)
        if self.loss == "cross_entropy":
            logits = out.reshape(out.shape[0], g, self.width).transpose(1, 2)  # (n, C, G)
            return F.cross_entropy(logits, y.long(), reduction="none")  # (n, G)
        return _elementwise(self.loss, out, y)

    def sums(self, packed: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The group's (G,) masked loss sums ``sum_i m_i l_i`` and (G,) label counts ``sum_i m_i``
        (None without a mask: every label observed)."""
        per = self._elements(packed, targets)
        g = len(self.tasks)
        if masks is None:
            num = per.sum(0)
            return (num.reshape(g, -1).sum(1) if self.target_width > 1 else num), None
        m = masks[:, self.target_start : self.target_start + g * self.target_width]
        num, den = (per * m).sum(0), m.sum(0)
        if self.target_width > 1:
            num, den = num.reshape(g, -1).sum(1), den.reshape(g, -1).sum(1)
        return num, den

    def means(self, packed: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The group's (G,) mean losses over every row and target column, all labels observed
        (one reduction: the value of ``sums`` over the label counts)."""
        per = self._elements(packed, targets)
        if self.target_width == 1:
            return per.mean(0)
        return per.reshape(per.shape[0], len(self.tasks), self.target_width).mean((0, 2))


class LossPlan:
    """How the losses of ``tasks`` are computed from packed outputs, targets and masks.

    Built once per network and task list (see the module docstring); :meth:`pack` lays out a
    batch's per-task targets and masks, :meth:`__call__` gives the ``(T,)`` loss vector in task
    order, :meth:`label_counts` the ``(T,)`` number of observed labels. ``masks=None`` means
    every label is observed (the module docstring's complete labels).
    """

    def __init__(self, tasks: Sequence[Task], layout: OutputLayout) -> None:
        self.tasks = list(tasks)
        self.layout = layout
        keys: dict[tuple[str, int, bool], list[int]] = {}
        for i, t in enumerate(self.tasks):
            key = loss_group(t, layout.widths[layout.names.index(t.name)])
            keys.setdefault(key, []).append(i)
        self.groups: list[_Group] = []
        start = 0
        owner: list[int] = []
        for (loss, width, sigmoid), members in keys.items():
            cols = tuple(c for i in members for c in range(*layout.columns(self.tasks[i].name).indices(layout.width)))
            tw = 1 if loss == "cross_entropy" else width
            self.groups.append(_Group(loss, width, tuple(members), cols, start, tw, layout.width, sigmoid))
            start += tw * len(members)
            owner += [i for i in members for _ in range(tw)]
        self.target_width = start
        order = [i for g in self.groups for i in g.tasks]
        #: Position of each task in the concatenated group losses (None: already in task order).
        self._order = None if order == list(range(len(order))) else torch.tensor([order.index(i) for i in range(len(order))])
        self._owner = torch.tensor(owner, dtype=torch.long)
        #: Each task's number of target columns, in task order (a row's label entries).
        self._entries = torch.zeros(len(self.tasks), dtype=torch.long).index_add_(0, self._owner, torch.ones(len(owner), dtype=torch.long))
        self._complete: tuple[int, torch.dtype, torch.device, torch.Tensor] | None = None
        self.target_names = [self.tasks[i].name for g in self.groups for i in g.tasks]

    def pack(self, targets: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-task targets ``(n, d_t)`` and masks into packed float ``(n, H_y)`` tensors (the mask
        as 0/1 in the targets' dtype). Targets or masks that are already side by side in one
        matrix, in this plan's order (:func:`column_block`), are used as they are."""
        y = self.pack_targets(targets)
        return y, _side_by_side(self._packed_columns(masks)).to(y.dtype)

    def pack_targets(self, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The packed float ``(n, H_y)`` targets alone (see :meth:`pack`)."""
        y = _side_by_side(self._packed_columns(targets))
        return y if y.is_floating_point() else y.to(torch.float32)

    def all_observed(self, masks: Mapping[str, torch.Tensor]) -> bool:
        """Whether every entry :meth:`pack` would take from ``masks`` is observed (read from the
        masks as given, one block when they sit side by side, without the float conversion)."""
        return bool(_side_by_side(self._packed_columns(masks)).all())

    def _packed_columns(self, per_task: Mapping[str, torch.Tensor]) -> list[torch.Tensor]:
        """Each task's columns that packing takes, in the packed order."""
        return [per_task[self.tasks[i].name][:, : g.target_width] for g in self.groups for i in g.tasks]

    def split(self, packed: Any) -> dict[str, Any]:
        """Each task's columns of packed ``(n, H_y)`` targets or masks (views; a tensor or a
        numpy array)."""
        columns = {}
        for g in self.groups:
            for k, i in enumerate(g.tasks):
                a = g.target_start + k * g.target_width
                columns[self.tasks[i].name] = packed[:, a : a + g.target_width]
        return columns

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None) -> torch.Tensor:
        if masks is None and targets.shape[0] > 0:  # every label observed: one mean per group
            parts = [g.means(outputs, targets) for g in self.groups]
            loss = torch.cat(parts) if len(parts) > 1 else parts[0]
            return loss if self._order is None else loss[self._order.to(loss.device)]
        num, den = self.sums(outputs, targets, masks)
        return num / den.clamp(min=1.0)

    def blockwise(self, outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None,
                  cells: int = 1 << 18) -> torch.Tensor:
        """The loss vector of :meth:`__call__` for a large evaluation set: the sums taken over
        blocks of rows of about ``cells`` target entries each, so that the element-wise
        temporaries stay small and in cache (equal to the call up to the order of the sums)."""
        n = int(targets.shape[0])
        step = max(1, cells // max(1, int(targets.shape[1])))
        if n <= step:
            return self(outputs, targets, masks)
        num: torch.Tensor | None = None
        den: torch.Tensor | None = None
        for start in range(0, n, step):
            rows = slice(start, start + step)
            part, count = self.sums(outputs[rows], targets[rows], None if masks is None else masks[rows])
            num = part if num is None else num + part
            if masks is not None:
                den = count if den is None else den + count
        assert num is not None
        if den is None:
            den = self.label_counts(None, n, targets.dtype, targets.device)
        return num / den.clamp(min=1.0)

    def sums(self, outputs: torch.Tensor, targets: torch.Tensor, masks: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(T,)`` masked loss sums and ``(T,)`` label counts, in task order: ``L_t`` is their
        ratio (at least 1 below). Data-parallel training adds both over processes first."""
        parts = [g.sums(outputs, targets, masks) for g in self.groups]
        num = torch.cat([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
        if masks is None:
            den = self.label_counts(None, targets.shape[0], targets.dtype, targets.device)
            return (num, den) if self._order is None else (num[self._order.to(num.device)], den)
        den = torch.cat([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        if self._order is None:
            return num, den
        order = self._order.to(num.device)
        return num[order], den[order]

    def label_counts(self, masks: torch.Tensor | None, rows: int = 0, dtype: torch.dtype = torch.float32,
                     device: torch.device | None = None) -> torch.Tensor:
        """The ``(T,)`` number of observed label entries of each task in packed ``masks``; without
        masks, of ``rows`` complete rows (as ``dtype`` on ``device``; the last one asked is kept)."""
        if masks is None:
            device = torch.device("cpu") if device is None else torch.device(device)
            kept = self._complete
            if kept is None or kept[:3] != (rows, dtype, device):
                kept = self._complete = (rows, dtype, device, (self._entries * rows).to(device, dtype))
            return kept[3]
        per_column = masks.sum(0)
        owner = self._owner.to(per_column.device)
        return per_column.new_zeros(len(self.tasks)).index_add_(0, owner, per_column)


def _side_by_side(parts: list[torch.Tensor]) -> torch.Tensor:
    if len(parts) == 1:
        return parts[0]
    block = column_block(parts)
    return torch.cat(parts, 1) if block is None else block


@lru_cache(maxsize=64)
def _plan(tasks: tuple[Task, ...], widths: tuple[int, ...]) -> LossPlan:
    return LossPlan(tasks, OutputLayout.of({t.name: w for t, w in zip(tasks, widths)}))


def loss_vector(
    tasks: list[Task],
    outputs: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
) -> torch.Tensor:
    """The vector ``(L_1, ..., L_T)`` in task order, from per-task outputs, targets and masks."""
    plan = _plan(tuple(tasks), tuple(int(outputs[t.name].shape[1]) for t in tasks))
    packed = torch.cat([outputs[t.name] for t in tasks], 1) if len(tasks) > 1 else outputs[tasks[0].name]
    y, m = plan.pack(targets, masks)
    return plan(packed, y, m)


def task_loss(task: Task, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The masked loss of one task; ``output`` holds logits or standardized values."""
    return loss_vector([task], {task.name: output}, {task.name: target}, {task.name: mask})[0]
