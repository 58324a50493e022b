"""``rlw``: random loss weighting (Lin et al., "Reasonable Effectiveness of Random Weighting: A
Litmus Test for Multi-Task Learning", TMLR 2022).

At every step fresh weights are drawn and normalized to the simplex:

- ``normal`` (the paper's default): ``w = softmax(z)``, ``z ~ N(0, I_T)``;
- ``uniform``: ``w = softmax(z)``, ``z ~ U(0, 1)^T``;
- ``dirichlet``: ``w ~ Dirichlet(1, ..., 1)`` (exponential draws divided by their sum).

The objective is ``sum_t w_t L_t`` with ``sum_t w_t = 1``. Draws come from the balancer's own
generator, seeded by ``seed``, so the same seed gives the same weights and the global random
state is untouched; the generator state is saved in checkpoints (extra state). A draw is
made every step whatever the tasks present; an absent task's loss is 0 with a zero gradient.
"""

from __future__ import annotations

from typing import Any

import torch

from polytask.balancers.base import LossWeighting, StepContext
from polytask.balancers.option_checks import choice, integer

DISTRIBUTIONS = ("normal", "uniform", "dirichlet")


class RandomLossWeighting(LossWeighting):
    """Random weights on the simplex each step (Lin et al. 2022).

    Args:
        seed: seed of the balancer's own generator.
        distribution: ``normal`` (softmax of N(0,1) draws), ``uniform`` (softmax of U(0,1)
            draws) or ``dirichlet`` (Dirichlet(1)).
    """

    name = "rlw"

    def __init__(self, seed: int = 0, distribution: str = "normal") -> None:
        super().__init__()
        self.seed = integer(self.name, "seed", seed, low=0)
        self.distribution = choice(self.name, "distribution", distribution, DISTRIBUTIONS)
        self.generator = torch.Generator().manual_seed(self.seed)

    def draw(self, n_tasks: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The next (n_tasks,) weight vector (on the CPU)."""
        g = self.generator
        if self.distribution == "normal":
            return torch.softmax(torch.randn(n_tasks, generator=g, dtype=dtype), dim=0)
        if self.distribution == "uniform":
            return torch.softmax(torch.rand(n_tasks, generator=g, dtype=dtype), dim=0)
        e = torch.empty(n_tasks, dtype=dtype).exponential_(1.0, generator=g)
        return e / e.sum()

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        return self.draw(losses.numel(), losses.dtype).to(losses.device)

    def get_extra_state(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(torch.as_tensor(state["generator"]).to(torch.uint8).cpu())
