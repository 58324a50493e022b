"""``gls``: the geometric loss strategy (Chennupati et al., "MultiNet++: Multi-Stream Feature
Aggregation and Geometric Loss Strategy for Multi-Task Learning", CVPR Workshops 2019).

The objective is the geometric mean of the task losses,

    L_GLS = (prod_t L_t)^(1/T) = exp( mean_t log L_t ),

which is invariant to each task's loss scale in the sense that its gradient direction does not
change when one ``L_t`` is multiplied by a constant. Its gradient is ``sum_t w_t grad L_t`` with
``w_t = L_GLS / (T L_t)``: these are the weights reported. Losses are clamped from below at
1e-12 inside the logarithm, so a zero loss (a task with no label in the batch) gives no NaN;
such a batch makes the geometric mean, and so every task's gradient, nearly vanish.
"""

from __future__ import annotations

import torch

from polytask.balancers.base import LossWeighting, StepContext

FLOOR = 1e-12


class GeometricLossStrategy(LossWeighting):
    """``L = exp(mean_t log L_t)`` (losses floored at 1e-12); applied weights ``L / (T L_t)``."""

    name = "gls"

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        floored = losses.clamp_min(FLOOR)
        return torch.exp(torch.log(floored).mean()) / (losses.numel() * floored)

    def objective(self, ctx: StepContext, w: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.log(ctx.losses.clamp_min(FLOOR)).mean())
