"""CAGrad: the best worst-case improvement within a ball around the mean gradient.

Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning" (NeurIPS 2021),
Algorithm 1. With ``g_0 = J^T u`` (u = 1/T) and ``sqrt(phi) = c ||g_0||``, the dual problem

    w* = argmin_{w in simplex}  g_w^T g_0 + sqrt(phi) ||g_w||,   g_w = J^T w,

gives ``d = g_0 + (sqrt(phi) / ||g_w*||) g_w*``, i.e. weights ``u + (sqrt(phi)/||g_w*||) w*``
(zero when ``||g_w*|| < norm_eps``: approximately Pareto-stationary). Everything is computed on
``G / tr(G)``. The dual is solved with scipy's SLSQP, as in the authors' code; no rescaling
by ``1 + c^2`` (their ``rescale = 0``).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.solvers import normalized
from polytask.errors import PolytaskError


class CAGrad(GramianAggregator):
    """Conflict-averse gradient descent (see the module docstring)."""

    name = "cagrad"

    def __init__(self, c: float = 0.4, norm_eps: float = 1e-4, mode: str = "exact") -> None:
        super().__init__(mode)
        if c < 0 or norm_eps < 0:
            raise PolytaskError("cagrad needs c >= 0 and norm_eps >= 0")
        self.c, self.norm_eps = float(c), float(norm_eps)

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m = gramian.shape[0]
        g = normalized(gramian, self.norm_eps).cpu().numpy()
        u = np.full(m, 1.0 / m)
        b = g @ u
        sqrt_phi = self.c * float(np.sqrt(max(u @ b, 0.0)))

        def objective(w: np.ndarray) -> tuple[float, np.ndarray]:
            gw = g @ w
            norm = float(np.sqrt(max(w @ gw, 1e-20)))
            return float(w @ b + sqrt_phi * norm), b + sqrt_phi * gw / norm

        res = minimize(objective, u, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * m,
                       constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)},),
                       options={"ftol": 1e-15, "maxiter": 1000})
        w = np.clip(res.x, 0.0, None)
        w = w / w.sum()
        gw_norm = float(np.sqrt(max(w @ g @ w, 0.0)))
        if gw_norm < self.norm_eps:
            return torch.zeros(m, dtype=gramian.dtype)
        return torch.as_tensor(u + (sqrt_phi / gw_norm) * w, dtype=gramian.dtype)
