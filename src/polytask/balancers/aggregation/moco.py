"""MoCo: MGDA with tracked gradients, which removes the bias of stochastic min-norm weights.

Fernando et al., "Mitigating Gradient Bias in Multi-objective Learning: A Provably Convergent
Approach" (ICLR 2023), Algorithm 1 (without the optional projection of the tracked gradients).
At step k (from 1), with ``beta_k = beta / k^beta_sigma`` and ``gamma_k = gamma / k^gamma_sigma``:

    Y <- Y - beta_k (Y - J)                                (tracked per-task gradients, Y_0 = J)
    lambda <- Pi_simplex(lambda - gamma_k (Y Y^T + rho I) lambda)    (lambda_0 = 1/T)
    d = Y^T lambda.

State: Y (T x P), lambda and k. Y has one entry per shared parameter, so only
``mode="exact"`` (the representation's size changes with the batch).

Absent tasks: an absent task's tracked gradient is frozen (it had no new measurement; a task's
``Y_t`` starts at its first measured gradient). The lambda step is taken on the face of the
simplex the present tasks span (their total weight kept), and ``d`` uses their tracked
gradients with their weights renormalised among them. k counts every step.
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import JacobianAggregator, Problem
from polytask.balancers.aggregation.solvers import face_of, project_simplex, to_face
from polytask.balancers.base import Remembers
from polytask.errors import PolytaskError


class MoCo(Remembers, JacobianAggregator):
    """Multi-objective gradient correction (see the module docstring)."""

    name = "moco"
    modes = ("exact",)
    state_fields = ("tracked", "seen", "lam", "steps")

    def __init__(self, beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1, gamma_sigma: float = 0.5,
                 rho: float = 0.0, mode: str = "exact") -> None:
        super().__init__(mode)
        if not 0 < beta <= 1 or gamma <= 0 or rho < 0 or beta_sigma < 0 or gamma_sigma < 0:
            raise PolytaskError("moco needs 0 < beta <= 1, gamma > 0, rho >= 0 and non-negative decay exponents")
        self.beta, self.beta_sigma, self.gamma, self.gamma_sigma, self.rho = (
            float(beta), float(beta_sigma), float(gamma), float(gamma_sigma), float(rho))
        self.tracked: torch.Tensor | None = None  # (T, P)
        self.seen: torch.Tensor | None = None  # (T,) bool: Y_t holds a measurement
        self.lam: torch.Tensor | None = None
        self.steps = 0

    def _start(self, n_tasks: int, jacobian: torch.Tensor) -> None:
        shape = (n_tasks, jacobian.shape[1])
        if self.tracked is None or self.lam is None or self.seen is None or self.tracked.shape != shape:
            self.tracked, self.seen = jacobian.new_zeros(shape), torch.zeros(n_tasks, dtype=torch.bool)
            self.lam, self.steps = torch.full((n_tasks,), 1.0 / n_tasks, dtype=torch.float64), 0
        self.tracked = self.tracked.to(jacobian)  # after a checkpoint load: CPU -> J's device

    def direction(self, jacobian: torch.Tensor, problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
        present = problem.present
        self._start(present.shape[0], jacobian)
        assert self.tracked is not None and self.lam is not None and self.seen is not None
        rows = present.nonzero().flatten().to(jacobian.device)
        fresh = (~self.seen[present]).to(jacobian.device)
        self.tracked[rows[fresh]] = jacobian[fresh]  # Y_0 = the first measured gradient
        self.seen[present] = True
        self.steps += 1
        k = self.steps
        beta_k = self.beta / k**self.beta_sigma
        gamma_k = self.gamma / k**self.gamma_sigma
        y = self.tracked[rows] - beta_k * (self.tracked[rows] - jacobian)
        self.tracked[rows] = y
        gram = (y.double() @ y.double().T).cpu() + self.rho * torch.eye(y.shape[0], dtype=torch.float64)
        lam, mass = face_of(self.lam, present)
        lam = project_simplex(lam - gamma_k * gram @ lam)
        self.lam = to_face(self.lam, present, lam, mass)
        w = lam.to(device=jacobian.device, dtype=jacobian.dtype)
        return w, w @ y
