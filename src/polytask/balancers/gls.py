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
in the product, as the definition says); where the floor holds the objective does not move with
that loss, so its weight is 0. The network's gradient is ``sum_t w_t grad L_t`` with those
weights (one pass, as for a fixed weighting).
"""

from __future__ import annotations

import torch

from polytask.balancers.base import LossWeighting, StepContext

FLOOR = 1e-12


class GeometricLossStrategy(LossWeighting):
    """``L = exp(mean_t log L_t)`` (losses floored at 1e-12); applied weights ``dL/dL_t = L / (T L_t)``
    (0 for an absent task and for a loss under the floor)."""

    name = "gls"

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        floored = losses.clamp_min(FLOOR)
        if ctx.present is None:  # every task present: no mask to apply
            mean = torch.exp(torch.log(floored).mean())
            return torch.where(losses >= FLOOR, mean / (losses.shape[0] * floored), torch.zeros_like(losses))
        present = ctx.presence().to(losses.device)
        if not bool(present.any()):
            return torch.zeros_like(losses)
        mean = geometric_mean(losses, present)
        return torch.where(present & (losses >= FLOOR), mean / (int(present.sum()) * floored), torch.zeros_like(losses))


def geometric_mean(losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """``exp(mean log L_t)`` over the present tasks (0 when there is none)."""
    if not bool(present.any()):
        return (losses * 0).sum()
    return torch.exp(torch.log(losses[present].clamp_min(FLOOR)).mean())
