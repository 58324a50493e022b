"""FairGrad: alpha-fair allocation of the update between tasks.

Ban and Ji, "Fair Resource Allocation in Multi-Task Learning" (ICML 2024), Eq. 4 / Algorithm 1:
the weights are the positive solution of

    G w = w^(-1/alpha)   (element-wise),   d = J^T w,

solved as a bounded least-squares problem with scipy (as the authors do), from ``w = 1/T``.
``alpha = 0`` is linear scalarization (``w = 1/T``); ``alpha = 1`` gives Nash-MTL's condition.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import least_squares

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.errors import PolytaskError


class FairGrad(GramianAggregator):
    """alpha-fair gradient aggregation (see the module docstring)."""

    name = "fairgrad"

    def __init__(self, alpha: float = 1.0, max_iters: int | None = None, mode: str = "exact") -> None:
        super().__init__(mode)
        if alpha < 0 or (max_iters is not None and int(max_iters) < 1):
            raise PolytaskError("fairgrad needs alpha >= 0 and max_iters >= 1")
        self.alpha = float(alpha)
        self.max_iters = int(max_iters) if max_iters is not None else None

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m = gramian.shape[0]
        uniform = np.full(m, 1.0 / m)
        if self.alpha == 0:
            return torch.as_tensor(uniform, dtype=gramian.dtype)
        g = gramian.cpu().numpy()
        res = least_squares(lambda x: g @ x - np.power(x, -1.0 / self.alpha), uniform, bounds=(0, np.inf),
                            max_nfev=self.max_iters)
        return torch.as_tensor(res.x, dtype=gramian.dtype)
