"""SDMGrad: a direction close to the preferred (mean) direction while improving every task.

Xiao et al., "Direction-oriented Multi-objective Learning: Simple and Provable Stochastic
Algorithms" (NeurIPS 2023). The weights solve

    min_{w in simplex} 1/2 || J^T (w + lambda u) ||^2    (u = 1/T)

by ``n_iter`` steps of projected SGD with momentum on the Gramian scaled by
``(mean_t sqrt(G_tt))^2``, warm-started from the previous weights; the update is
``d = J^T (w + lambda u) / (1 + lambda)``.

Deviation: the paper estimates ``G`` as ``J_1 J_2^T`` from two independent mini-batches; the
trainer sees one mini-batch per step, so here ``G = J J^T`` of that batch (a biased estimate).
State: the weights.

Absent tasks: the step is SDMGrad on the present tasks alone, warm-started from their stored
weights renormalised to the simplex; the new weights are stored back with the share of the
simplex the present tasks held, so an absent task's stored weight is kept.
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.solvers import face_of, project_simplex, to_face
from polytask.balancers.base import Remembers
from polytask.errors import PolytaskError


class SDMGrad(Remembers, GramianAggregator):
    """Stochastic direction-oriented MGDA (see the module docstring)."""

    name = "sdmgrad"
    state_fields = ("w",)

    def __init__(self, lr: float = 10.0, momentum: float = 0.5, n_iter: int = 20, lambda_: float = 0.3,
                 mode: str = "exact") -> None:
        super().__init__(mode)
        if lr <= 0 or not 0 <= momentum < 1 or int(n_iter) < 1 or lambda_ < 0:
            raise PolytaskError("sdmgrad needs lr > 0, 0 <= momentum < 1, n_iter >= 1 and lambda_ >= 0")
        self.lr, self.momentum, self.n_iter, self.lambda_ = float(lr), float(momentum), int(n_iter), float(lambda_)
        self.w: torch.Tensor | None = None

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m, n_tasks = gramian.shape[0], problem.present.shape[0]
        if self.w is None or self.w.shape[0] != n_tasks:
            self.w = torch.full((n_tasks,), 1.0 / n_tasks, dtype=torch.float64)
        w, mass = face_of(self.w, problem.present)
        u = torch.full((m,), 1.0 / m, dtype=gramian.dtype)
        scale = torch.diagonal(gramian).clamp(min=0.0).sqrt().mean()
        a = gramian / (scale * scale + 1e-8)
        velocity: torch.Tensor | None = None
        for _ in range(self.n_iter):
            grad = a @ (w + self.lambda_ * u)
            velocity = grad if velocity is None else self.momentum * velocity + grad
            w = project_simplex(w - self.lr * velocity)
        self.w = to_face(self.w, problem.present, w, mass)
        return (w + self.lambda_ * u) / (1.0 + self.lambda_)
