"""``imtl_l``: the loss-balancing half of Impartial Multi-Task Learning (Liu et al., "Towards
Impartial Multi-task Learning", ICLR 2021).

Each task has a learnable scale ``s_t`` and the joint objective is

    L_IMTL-L = sum_t ( exp(s_t) L_t - s_t ).

The ``s_t`` are optimized with the network by the trainer (they are this balancer's
``nn.Parameter``). At a fixed ``L_t`` the optimum is ``exp(s_t) L_t = 1``: every scaled loss is
driven towards the same value, 1, whatever the raw scale of the task; the ``- s_t`` term stops
``s_t -> -inf``.

The gradients are written out (:class:`~polytask.balancers.base.LearnedLossScales`): one pass
of ``sum_t w_t L_t`` for the network, ``exp(s_t) L_t - 1`` for ``s_t``.

Absent tasks: an absent task's term is left out of the objective (its ``s_t`` gets no gradient
from that step; its loss of 0 would push ``s_t`` up through ``- s_t``).
"""

from __future__ import annotations

import torch
from torch import nn

from polytask.balancers.base import LearnedLossScales, StepContext


class ImpartialLossWeighting(LearnedLossScales):
    """``L = sum_t exp(s_t) L_t - s_t`` with learnable ``s_t`` starting at 0 (IMTL-L, Liu et al.
    2021). The applied weight of task ``t`` is ``exp(s_t)``."""

    name = "imtl_l"

    def __init__(self) -> None:
        super().__init__()
        self.log_scale: nn.Parameter | None
        self.register_parameter("log_scale", None)

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        self.log_scale = nn.Parameter(torch.zeros(len(task_names)))

    def scales(self) -> nn.Parameter:
        assert self.log_scale is not None, "setup() was not called"
        return self.log_scale

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return torch.exp(self.scales().detach()).to(losses)

    def scale_gradient(self, s: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``d/ds_t (exp(s_t) L_t - s_t) = exp(s_t) L_t - 1``."""
        return torch.exp(s) * losses - 1.0
