"""ConFIG: the conflict-free direction with equal cosine to every task gradient.

Liu et al., "ConFIG: Towards Conflict-free Training of Physics Informed Neural Networks"
(ICLR 2025), Eq. 2. With unit gradients ``U = D^-1 J`` (``D = diag ||g_t||``):

    d_hat = normalize(U^+ 1),   d = (sum_t g_t^T d_hat) d_hat.

In Gramian terms ``U^+ 1 = U^T (D^-1 G D^-1)^+ 1``, so ``d = J^T w`` with
``w = D^-1 v (1^T G D^-1 v) / (v^T G_u v)``, ``v = G_u^+ 1``, ``G_u = D^-1 G D^-1``: it runs on the
Gramian. Zero gradients are left out (their unit vector is taken as 0). ``G_u^+ 1`` is solved with
a numerical rank decision at the gradients' precision
(:func:`~polytask.balancers.aggregation.solvers.pinv_solve`): when
``1`` has no component in the range of ``G_u`` beyond rounding, as for exactly opposite
gradients, ``d = 0`` as the definition gives (a plain pseudo-inverse turns the rounding noise
into a unit direction and a full-length update).
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.solvers import pinv_solve


class ConFIG(GramianAggregator):
    """Conflict-free inverse gradients (see the module docstring)."""

    name = "config"

    def __init__(self, mode: str = "exact") -> None:
        super().__init__(mode)

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        norms = torch.sqrt(torch.diagonal(gramian).clamp(min=0.0))
        inv = torch.where(norms > 0, 1.0 / torch.where(norms > 0, norms, torch.ones_like(norms)), torch.zeros_like(norms))
        g_unit = inv[:, None] * gramian * inv[None, :]
        v = pinv_solve(g_unit, torch.ones_like(norms), problem.entry_error)
        sq = v @ g_unit @ v
        if sq <= 0:
            return torch.zeros_like(norms)
        a = inv * v / sq.sqrt()  # d_hat = J^T a
        length = (gramian @ a).sum()
        return a * length
