"""Fixed combinations of the task gradients, as aggregators (oracles for the engine).

- ``mean``: ``d = (1/T) sum_t g_t`` (``w_t = 1/T``);
- ``sum``: ``d = sum_t g_t`` (``w_t = 1``), the gradient of the summed loss.

With absent tasks, ``T`` counts the present ones.
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem


class MeanAggregation(GramianAggregator):
    """``w_t = 1/T``."""

    name = "mean"

    def __init__(self, mode: str = "exact") -> None:
        super().__init__(mode)

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m = gramian.shape[0]
        return torch.full((m,), 1.0 / m, dtype=gramian.dtype)


class SumAggregation(GramianAggregator):
    """``w_t = 1``."""

    name = "sum"

    def __init__(self, mode: str = "exact") -> None:
        super().__init__(mode)

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        return torch.ones(gramian.shape[0], dtype=gramian.dtype)
