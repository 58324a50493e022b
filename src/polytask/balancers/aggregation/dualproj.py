"""DualProj: the mean gradient projected onto the dual cone of the task gradients.

Quinton and Rey, "Jacobian Descent for Multi-Objective Optimization" (2024), after GEM
(Lopez-Paz and Ranzato 2017, Eq. 11):

    d = pi_J(J^T u),  u = 1/T,   i.e. d = J^T v,  v = argmin_{v >= u} v^T G v,

solved with quadprog on ``G / tr(G) + reg_eps I`` (as in torchjd; ``G`` first projected onto the
semi-definite cone, which only moves the negative eigenvalues rounding produces, with scipy's
``nnls`` as the fallback should quadprog fail). ``g_t^T d >= 0`` for every task.
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.solvers import dual_cone_weights, normalized, psd_part, regularized
from polytask.errors import PolytaskError


class DualProj(GramianAggregator):
    """Projection of the mean gradient onto the dual cone (see the module docstring)."""

    name = "dualproj"

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4, mode: str = "exact") -> None:
        super().__init__(mode)
        if norm_eps < 0 or reg_eps < 0:
            raise PolytaskError("dualproj needs norm_eps >= 0 and reg_eps >= 0")
        self.norm_eps, self.reg_eps = float(norm_eps), float(reg_eps)

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m = gramian.shape[0]
        g = regularized(normalized(psd_part(gramian), self.norm_eps), self.reg_eps)
        u = torch.full((1, m), 1.0 / m, dtype=gramian.dtype)
        return dual_cone_weights(g, u)[0]
