"""``uw``: uncertainty weighting (Kendall, Gal and Cipolla, "Multi-Task Learning Using
Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR 2018).

Each task has a learnable log-variance ``s_t = log sigma_t^2`` and the joint objective is

    L_UW = sum_t ( 1/2 exp(-s_t) L_t + 1/2 s_t ),

the negative log-likelihood of a Gaussian with variance ``sigma_t^2`` (up to constants). The
``s_t`` are optimized with the network by the trainer (they are this balancer's
``nn.Parameter``); the ``1/2 s_t`` term keeps them from growing without bound. At a fixed
``L_t`` the optimum is ``s_t = log L_t``, so the weight ``1/2 exp(-s_t)`` tends to
``1 / (2 L_t)``: tasks with larger loss (more noise) are weighted down.

The gradients are written out (:class:`~polytask.balancers.base.LearnedLossScales`): one pass
of ``sum_t w_t L_t`` for the network, ``1/2 (1 - exp(-s_t) L_t)`` for ``s_t``.

Absent tasks: an absent task's term is left out of the objective, so its ``s_t`` gets no
gradient from that step (its loss of 0 would otherwise pull ``s_t`` down through ``1/2 s_t``).
"""

from __future__ import annotations

import torch
from torch import nn

from polytask.balancers.base import LearnedLossScales, StepContext
from polytask.balancers.option_checks import real


class UncertaintyWeighting(LearnedLossScales):
    """``L = sum_t 1/2 exp(-s_t) L_t + 1/2 s_t`` with learnable log-variances ``s_t`` (Kendall et
    al. 2018). The applied weight of task ``t`` is ``1/2 exp(-s_t)``.

    Args:
        init_log_variance: the initial ``s_t`` (0: unit variance; LibMTL starts at -0.5).
    """

    name = "uw"

    def __init__(self, init_log_variance: float = 0.0) -> None:
        super().__init__()
        self.init_log_variance = real(self.name, "init_log_variance", init_log_variance)
        self.log_variance: nn.Parameter | None
        self.register_parameter("log_variance", None)

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        self.log_variance = nn.Parameter(torch.full((len(task_names),), self.init_log_variance))

    def scales(self) -> nn.Parameter:
        assert self.log_variance is not None, "setup() was not called"
        return self.log_variance

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return (0.5 * torch.exp(-self.scales().detach())).to(losses)

    def scale_gradient(self, s: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``d/ds_t (1/2 exp(-s_t) L_t + 1/2 s_t) = 1/2 (1 - exp(-s_t) L_t)``."""
        return 0.5 - 0.5 * torch.exp(-s) * losses
