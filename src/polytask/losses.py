"""Masked per-task losses.

For task t with per-entry loss ``l`` and label mask ``m`` (1 where the label is observed),
``L_t = sum_i m_i l(f_t(x_i), y_i) / max(1, sum_i m_i)``: a missing label contributes nothing,
and a batch with no label for t gives ``L_t = 0`` (and so no gradient for that task).

A regression task with a sigmoid output (``Task.output == "sigmoid"``) is scored on
``sigmoid(f_t(x))``: the head's raw output stays linear and the loss applies the link.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from polytask.tasks import Task


def _masked_mean(per_entry: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(per_entry.dtype)
    return (per_entry * m).sum() / m.sum().clamp(min=1.0)


def task_loss(task: Task, output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The masked loss of one task; ``output`` holds logits or standardized values."""
    name = task.loss_name
    if task.output == "sigmoid":
        output = torch.sigmoid(output)
    if name == "cross_entropy":
        per = F.cross_entropy(output, target[:, 0].long(), reduction="none")
        return _masked_mean(per, mask[:, 0])
    if name == "bce":
        per = F.binary_cross_entropy_with_logits(output, target, reduction="none")
    elif name == "mse":
        per = (output - target) ** 2
    elif name == "l1":
        per = (output - target).abs()
    elif name == "huber":
        per = F.huber_loss(output, target, reduction="none", delta=1.0)
    else:  # Task validates names; this guards programmatic misuse
        raise ValueError(f"unknown loss '{name}'")
    return _masked_mean(per, mask)


def loss_vector(
    tasks: list[Task],
    outputs: dict[str, torch.Tensor],
    targets: dict[str, torch.Tensor],
    masks: dict[str, torch.Tensor],
) -> torch.Tensor:
    """The vector ``(L_1, ..., L_T)`` in task order."""
    return torch.stack([task_loss(t, outputs[t.name], targets[t.name], masks[t.name]) for t in tasks])
