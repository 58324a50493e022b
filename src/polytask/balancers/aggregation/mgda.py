"""MGDA: the min-norm point of the convex hull of the task gradients.

Sener and Koltun, "Multi-Task Learning as Multi-Objective Optimization" (NeurIPS 2018), after
Désidéri (2012):

    w* = argmin_{w >= 0, sum w = 1} || sum_t w_t g_t ||^2 = argmin w^T G w,    d = J^T w*.

``d`` is a common descent direction (``g_t^T d >= ||d||^2`` for every task) and ``d = 0`` at a
Pareto-stationary point. MGDA-UB is this method in ``mode="representation"`` (gradients of the
shared representation, the paper's upper bound).

A present task with a zero gradient makes ``d = 0`` (it is then the min-norm point), as the
definition says; a task without labels in the batch is absent and left out (see the aggregation
base).

Solvers: ``qp`` (default) solves the problem exactly with quadprog on ``G / tr(G) + reg_eps I``
(the scaling leaves ``w*`` unchanged), ``G`` first projected onto the semi-definite cone (a
float32 Gramian cast to float64 has eigenvalues of about ``-1e-7 lambda_max``, which quadprog
rejects as "not positive definite"; only those move).
Should quadprog still fail, the step falls back to scipy's SLSQP on the same problem and says so
once (a ``RuntimeWarning``). ``frank_wolfe`` is the paper's Algorithm 2 (start at ``1/T``, move towards
the vertex of smallest ``(G w)_t`` with the exact line search, stop when the step is below
``epsilon`` or after ``max_iters``).
"""

from __future__ import annotations

import warnings

import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.solvers import QPFailure, normalized, psd_part, regularized, simplex_min_norm, simplex_min_norm_slsqp
from polytask.errors import PolytaskError

SOLVERS = ("qp", "frank_wolfe")


def frank_wolfe_min_norm(gram: torch.Tensor, epsilon: float, max_iters: int) -> torch.Tensor:
    """Algorithm 2 of Sener and Koltun (2018) on the Gramian."""
    m = gram.shape[0]
    w = torch.full((m,), 1.0 / m, dtype=gram.dtype)
    for _ in range(max_iters):
        t = int(torch.argmin(gram @ w))
        gw = gram @ w
        vw = gw[t]  # e_t^T G w
        ww = w @ gw  # w^T G w
        vv = gram[t, t]
        if vv <= vw:
            gamma = 1.0
        elif ww <= vw:
            gamma = 0.0
        else:
            gamma = float((ww - vw) / (ww + vv - 2 * vw))
        w = (1 - gamma) * w
        w[t] += gamma
        if gamma < epsilon:
            break
    return w


class MGDA(GramianAggregator):
    """Min-norm point of the convex hull of the gradients (see the module docstring)."""

    name = "mgda"

    def __init__(self, solver: str = "qp", epsilon: float = 1e-3, max_iters: int = 100, reg_eps: float = 1e-10,
                 mode: str = "exact") -> None:
        super().__init__(mode)
        if solver not in SOLVERS:
            raise PolytaskError(f"unknown MGDA solver '{solver}' (choose from {', '.join(SOLVERS)})")
        if epsilon <= 0 or max_iters < 1 or reg_eps < 0:
            raise PolytaskError("mgda needs epsilon > 0, max_iters >= 1 and reg_eps >= 0")
        self.solver, self.epsilon, self.max_iters, self.reg_eps = solver, float(epsilon), int(max_iters), float(reg_eps)
        self._warned = False

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        if self.solver == "frank_wolfe":
            return frank_wolfe_min_norm(gramian, self.epsilon, self.max_iters)
        g = normalized(psd_part(gramian), 0.0)
        if not torch.any(g != 0):
            return torch.full((g.shape[0],), 1.0 / g.shape[0], dtype=g.dtype)
        try:
            return simplex_min_norm(regularized(g, self.reg_eps))
        except QPFailure as exc:
            if not self._warned:
                self._warned = True
                warnings.warn(f"balancer 'mgda': {exc}; solving such steps with scipy's SLSQP instead", RuntimeWarning, stacklevel=2)
            return simplex_min_norm_slsqp(g)
