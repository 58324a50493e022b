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
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from polytask.balancers.aggregation.base import GramianAggregator
from polytask.balancers.aggregation.seeded import SeededStream
from polytask.errors import PolytaskError


class GradVac(GramianAggregator):
    """Gradient Vaccine (see the module docstring)."""

    name = "gradvac"

    def __init__(self, beta: float = 0.5, eps: float = 1e-8, seed: int = 0, mode: str = "exact") -> None:
        super().__init__(mode)
        if not 0.0 <= beta <= 1.0 or eps < 0:
            raise PolytaskError("gradvac needs 0 <= beta <= 1 and eps >= 0")
        self.beta, self.eps, self.seed = float(beta), float(eps), int(seed)
        self._stream = SeededStream(self.seed)
        self.phi_hat: torch.Tensor | None = None

    def weights_of(self, gramian: torch.Tensor) -> torch.Tensor:
        m = gramian.shape[0]
        if self.phi_hat is None or self.phi_hat.shape != (m, m):
            self.phi_hat = torch.zeros((m, m), dtype=torch.float64)
        g = gramian.cpu().numpy()
        phi_hat = self.phi_hat.numpy()  # shares memory: updated in place
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
        return torch.as_tensor(coef.sum(axis=0), dtype=gramian.dtype)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = dict(self._stream.state_dict())
        if self.phi_hat is not None:
            state["phi_hat"] = self.phi_hat.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._stream.load_state_dict(state)
        if "phi_hat" in state:
            self.phi_hat = torch.as_tensor(state["phi_hat"], dtype=torch.float64).clone()
