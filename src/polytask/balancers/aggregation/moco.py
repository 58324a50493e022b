"""MoCo: MGDA with tracked gradients, which removes the bias of stochastic min-norm weights.

Fernando et al., "Mitigating Gradient Bias in Multi-objective Learning: A Provably Convergent
Approach" (ICLR 2023), Algorithm 1 (without the optional projection of the tracked gradients).
At step k (from 1), with ``beta_k = beta / k^beta_sigma`` and ``gamma_k = gamma / k^gamma_sigma``:

    Y <- Y - beta_k (Y - J)                                (tracked per-task gradients, Y_0 = J)
    lambda <- Pi_simplex(lambda - gamma_k (Y Y^T + rho I) lambda)    (lambda_0 = 1/T)
    d = Y^T lambda.

State: Y (T x P), lambda and k. Y has one entry per shared parameter, so only
``mode="exact"`` (the representation's size changes with the batch).
"""

from __future__ import annotations

from typing import Any

import torch

from polytask.balancers.aggregation.base import JacobianAggregator
from polytask.balancers.aggregation.solvers import project_simplex
from polytask.errors import PolytaskError


class MoCo(JacobianAggregator):
    """Multi-objective gradient correction (see the module docstring)."""

    name = "moco"
    modes = ("exact",)

    def __init__(self, beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1, gamma_sigma: float = 0.5,
                 rho: float = 0.0, mode: str = "exact") -> None:
        super().__init__(mode)
        if not 0 < beta <= 1 or gamma <= 0 or rho < 0 or beta_sigma < 0 or gamma_sigma < 0:
            raise PolytaskError("moco needs 0 < beta <= 1, gamma > 0, rho >= 0 and non-negative decay exponents")
        self.beta, self.beta_sigma, self.gamma, self.gamma_sigma, self.rho = (
            float(beta), float(beta_sigma), float(gamma), float(gamma_sigma), float(rho))
        self.tracked: torch.Tensor | None = None
        self.lam: torch.Tensor | None = None
        self.steps = 0

    def direction(self, jacobian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = jacobian.shape[0]
        if self.tracked is None or self.tracked.shape != jacobian.shape:
            self.tracked, self.lam, self.steps = jacobian.clone(), torch.full((m,), 1.0 / m, dtype=torch.float64), 0
        assert self.lam is not None
        self.steps += 1
        k = self.steps
        beta_k = self.beta / k**self.beta_sigma
        gamma_k = self.gamma / k**self.gamma_sigma
        self.tracked = self.tracked - beta_k * (self.tracked - jacobian)
        y = self.tracked.double()
        gram = (y @ y.T).cpu() + self.rho * torch.eye(m, dtype=torch.float64)
        self.lam = project_simplex(self.lam - gamma_k * gram @ self.lam)
        w = self.lam.to(device=jacobian.device, dtype=jacobian.dtype)
        return w, w @ self.tracked

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"steps": self.steps}
        if self.tracked is not None and self.lam is not None:
            state.update(tracked=self.tracked.clone(), lam=self.lam.clone())
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps = int(state.get("steps", 0))
        self.tracked = torch.as_tensor(state["tracked"]).clone() if "tracked" in state else None
        self.lam = torch.as_tensor(state["lam"], dtype=torch.float64).clone() if "lam" in state else None
