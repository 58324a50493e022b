"""GradVac: raise each pair's gradient similarity towards an adaptive target.

Wang et al., "Gradient Vaccine: Investigating and Improving Multi-task Optimization in
Massively Multilingual Models" (ICLR 2021). For each task i and each other task j (random
order), with ``phi_ij = cos(g_i^PC, g_j)`` and the EMA target ``phi_hat_ij``: if
``phi_ij < phi_hat_ij``,

    g_i^PC <- g_i^PC + ||g_i^PC|| (phi_hat sqrt(1 - phi^2) - phi sqrt(1 - phi_hat^2))
                       / (||g_j|| sqrt(1 - phi_hat^2)) g_j,

then ``phi_hat_ij <- (1 - beta) phi_hat_ij + beta phi_ij`` (``eps`` guards the denominators).
The update is ``d = sum_i g_i^PC``. All quantities are read from the Gramian (``g_i^PC`` is
``sum_k c_ik g_k``). State: ``phi_hat`` (T x T, starts at 0) and the seeded order generator.

Absent tasks: the surgery runs among the present tasks (random orders of them only), and only
the targets ``phi_hat_ij`` between two present tasks are updated; an absent task's rows and
columns of ``phi_hat`` are kept as they were.
"""

from __future__ import annotations

import math
import numpy as np
import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.seeded import SeededStream
from polytask.balancers.base import Remembers
from polytask.errors import PolytaskError


class GradVac(Remembers, GramianAggregator):
    """Gradient Vaccine (see the module docstring)."""

    name = "gradvac"
    state_fields = ("_stream", "phi_hat")

    def __init__(self, beta: float = 0.5, eps: float = 1e-8, seed: int = 0, mode: str = "exact") -> None:
        super().__init__(mode)
        if not 0.0 <= beta <= 1.0 or eps < 0:
            raise PolytaskError("gradvac needs 0 <= beta <= 1 and eps >= 0")
        self.beta, self.eps, self.seed = float(beta), float(eps), int(seed)
        self._stream = SeededStream(self.seed)
        self.phi_hat: torch.Tensor | None = None

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m, n_tasks = gramian.shape[0], problem.present.shape[0]
        if self.phi_hat is None or self.phi_hat.shape != (n_tasks, n_tasks):
            self.phi_hat = torch.zeros((n_tasks, n_tasks), dtype=torch.float64)
        idx = problem.present.nonzero().flatten()
        g = gramian.cpu().numpy()
        phi_hat = self.phi_hat[idx][:, idx].numpy()  # the present tasks' targets, written back below
        coef = np.eye(m)
        beta, eps = self.beta, self.eps
        for i in range(m):
            dots = coef[i] @ g  # g_i^PC . g_k for every k
            others = [j for j in range(m) if j != i]
            for k in self._stream.permutation(len(others)):
                j = others[k]
                norm_i = math.sqrt(max(float(dots @ coef[i]), 0.0))
                norm_j = math.sqrt(max(float(g[j, j]), 0.0))
                phi = float(dots[j]) / (norm_i * norm_j + eps)
                target = float(phi_hat[i, j])
                if phi < target:
                    root_phi = math.sqrt(max(1 - phi * phi, 0.0))
                    root_target = math.sqrt(max(1 - target * target, 0.0))
                    step = norm_i * (target * root_phi - phi * root_target) / (norm_j * root_target + eps)
                    coef[i, j] += step
                    dots = dots + step * g[j]
                phi_hat[i, j] = (1 - beta) * target + beta * phi
        self.phi_hat[idx[:, None], idx[None, :]] = torch.as_tensor(phi_hat)
        return torch.as_tensor(coef.sum(axis=0), dtype=gramian.dtype)
