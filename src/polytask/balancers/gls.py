"""``gls``: the geometric loss strategy (Chennupati et al., "MultiNet++: Multi-Stream Feature
Aggregation and Geometric Loss Strategy for Multi-Task Learning", CVPR Workshops 2019).

The objective is the geometric mean of the task losses,

    L_GLS = (prod_t L_t)^(1/T) = exp( mean_t log L_t ),

which is invariant to each task's loss scale in the sense that its gradient direction does not
change when one ``L_t`` is multiplied by a constant. Its gradient is ``sum_t w_t grad L_t`` with
``w_t = L_GLS / (T L_t)``: these are the weights reported.

A task with no label in the batch (absent, ``StepContext.present``) has loss 0, which would make
the product, and every task's gradient, vanish. Absent tasks are left out of that step: the mean
runs over the present tasks (``T`` counts only them) and an absent task gets weight 0. Present
losses are clamped from below at 1e-12 inside the logarithm (a present task's loss of 0 stays
in the product, as the definition says).
"""

from __future__ import annotations

import torch

from polytask.balancers.base import LossWeighting, StepContext

FLOOR = 1e-12


class GeometricLossStrategy(LossWeighting):
    """``L = exp(mean_t log L_t)`` (losses floored at 1e-12); applied weights ``L / (T L_t)``."""

    name = "gls"

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        present = ctx.presence().to(losses.device)
        if not bool(present.any()):
            return torch.zeros_like(losses)
        floored = losses.clamp_min(FLOOR)
        mean = geometric_mean(losses, present)
        return torch.where(present, mean / (int(present.sum()) * floored), torch.zeros_like(losses))

    def objective(self, ctx: StepContext, w: torch.Tensor) -> torch.Tensor:
        return geometric_mean(ctx.losses, ctx.presence().to(ctx.losses.device))


def geometric_mean(losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """``exp(mean log L_t)`` over the present tasks (0 when there is none)."""
    if not bool(present.any()):
        return (losses * 0).sum()
    return torch.exp(torch.log(losses[present].clamp_min(FLOOR)).mean())
