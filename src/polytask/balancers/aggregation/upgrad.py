"""UPGrad: the average of each task gradient projected onto the dual cone of all of them.

Quinton and Rey, "Jacobian Descent for Multi-Objective Optimization" (2024):

    d = sum_i pi_J(u_i g_i),   pi_J(x) = argmin_{y : J y >= 0} ||y - x||^2,   u = 1/T,

so ``g_t^T d >= 0`` for every task. By their Proposition 1, ``pi_J(J^T u) = J^T v`` with
``v = argmin_{v >= u} v^T G v``: one small QP per task on the Gramian (quadprog), here on
``G / tr(G) + reg_eps I`` as in torchjd (``norm_eps``: below it the Gramian counts as zero).
The weights are ``w = sum_i v_i``. The Gramian is first projected onto the semi-definite cone
(``solvers.psd_part``: only the negative eigenvalues that rounding produces move); should
quadprog still fail, the same projection is solved as a non-negative least-squares problem
(scipy's ``nnls``).
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.solvers import dual_cone_weights, normalized, psd_part, regularized
from polytask.errors import PolytaskError


class UPGrad(GramianAggregator):
    """Unconflicting projection of gradients (see the module docstring)."""

    name = "upgrad"

    def __init__(self, norm_eps: float = 1e-4, reg_eps: float = 1e-4, mode: str = "exact") -> None:
        super().__init__(mode)
        if norm_eps < 0 or reg_eps < 0:
            raise PolytaskError("upgrad needs norm_eps >= 0 and reg_eps >= 0")
        self.norm_eps, self.reg_eps = float(norm_eps), float(reg_eps)

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m = gramian.shape[0]
        g = regularized(normalized(psd_part(gramian), self.norm_eps), self.reg_eps)
        lower = torch.eye(m, dtype=gramian.dtype) / m
        return dual_cone_weights(g, lower).sum(dim=0)
