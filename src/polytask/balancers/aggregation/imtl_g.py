"""IMTL-G: the update whose projection onto every unit task gradient is equal.

Liu et al., "Towards Impartial Multi-task Learning" (ICLR 2021); the form that also accepts
linearly dependent gradients is from Quinton and Rey (2024):

    v = G^+ sqrt(diag G),   w = v / sum(v)   (w = 0 when sum(v) = 0),   d = J^T w,

so that ``g_t^T d / ||g_t||`` is the same for every task. ``G^+`` is taken with a numerical rank
decision at the precision the gradients were computed in (``solvers.pinv_solve``): a float32
Gramian judged with float64 tolerances keeps rounding-level eigenvalues and amplifies their
noise; ``sum(v)`` counts as 0 within the same relative precision.
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.solvers import pinv_solve


class IMTLG(GramianAggregator):
    """Impartial MTL, gradient part (see the module docstring)."""

    name = "imtl_g"

    def __init__(self, mode: str = "exact") -> None:
        super().__init__(mode)

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        norms = torch.sqrt(torch.diagonal(gramian).clamp(min=0.0))
        v = pinv_solve(gramian, norms, problem.entry_error)
        total = v.sum()
        if float(total.abs()) <= gramian.shape[0] * problem.entry_error * float(v.abs().sum()):
            return torch.zeros_like(v)
        return v / total
