"""Nash-MTL: the Nash bargaining solution between tasks.

Navon et al., "Multi-Task Learning as a Bargaining Game" (ICML 2022), Eq. 3 / Theorem 5.1: the
weights are the positive solution of

    G alpha = 1 / alpha   (element-wise, on the raw Gramian),   d = J^T alpha,

so every task gets ``alpha_t g_t^T d = alpha_t (G alpha)_t = 1``: the bargaining solution, and
``||d||^2 = alpha^T G alpha = T``. The authors reach it by a sequence of convex approximations
(cvxpy) whose constraints ``alpha_t (G alpha)_t >= 1`` are on the raw Gramian; here the same
first-order condition is solved directly as a bounded least-squares problem (scipy) on
``G / s`` (``s = ||G||_F``, for conditioning), warm-started from the last weights, and mapped
back with ``alpha = alpha_s / sqrt(s)``. So the update does not depend on the scale of the
gradients: multiplying every loss by ``c`` divides the weights by ``c`` and leaves ``d``
unchanged. The result is clipped to ``||d|| <= max_norm`` (0 disables), as the authors clip the
shared gradient.

With ``update_weights_every = k`` the weights are recomputed every k steps and reused in
between (state: the cached weights and the step counter, saved in checkpoints); in training, a
step that reuses them costs one ordinary backward pass (no per-task gradients).

Absent tasks: the bargaining is between the present tasks (warm-started from their cached
weights); an absent task keeps its cached weight for later reuse and gets weight 0 in this step.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import least_squares

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.base import Remembers
from polytask.errors import PolytaskError

BOUNDS = (1e-8, 1e8)


def nash_weights(gram: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The positive solution of ``G alpha = 1/alpha`` (least squares, bounded away from 0)."""
    start = np.clip(start, BOUNDS[0] * 10, BOUNDS[1] / 10)
    res = least_squares(lambda a: gram @ a - 1.0 / a, start, jac=lambda a: gram + np.diag(1.0 / (a * a)),
                        bounds=BOUNDS, xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=100)
    return res.x


class NashMTL(Remembers, GramianAggregator):
    """Nash bargaining weights (see the module docstring)."""

    name = "nash_mtl"
    state_fields = ("step", "alpha")

    def __init__(self, max_norm: float = 1.0, update_weights_every: int = 1, mode: str = "exact") -> None:
        super().__init__(mode)
        if max_norm < 0 or int(update_weights_every) < 1:
            raise PolytaskError("nash_mtl needs max_norm >= 0 and update_weights_every >= 1")
        self.max_norm, self.update_weights_every = float(max_norm), int(update_weights_every)
        self.step = 0
        self.alpha: torch.Tensor | None = None  # (T,) raw-scale weights, float64

    def _due(self, n_tasks: int) -> bool:
        return self.alpha is None or self.alpha.shape[0] != n_tasks or self.step % self.update_weights_every == 0

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        present = problem.present
        if self._due(present.shape[0]):
            if self.alpha is None or self.alpha.shape[0] != present.shape[0]:
                self.alpha = torch.ones(present.shape[0], dtype=torch.float64)
            scale = float(torch.linalg.norm(gramian))
            if scale > 0:
                start = (self.alpha[present] * scale**0.5).numpy()
                solved = nash_weights((gramian / scale).cpu().numpy(), start) / scale**0.5
                self.alpha[present] = torch.as_tensor(solved, dtype=torch.float64)
        self.step += 1
        alpha = self.alpha[present].to(gramian.dtype)
        if self.max_norm > 0:
            norm = float(torch.sqrt((alpha @ gramian @ alpha).clamp(min=0.0)))
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)
        return alpha

    def reused_weights(self, present: torch.Tensor) -> torch.Tensor | None:
        """Between updates the cached weights apply without computing any Gramian."""
        if self._due(present.shape[0]):
            return None
        assert self.alpha is not None
        self.step += 1
        return torch.where(present, self.alpha, torch.zeros_like(self.alpha))

    def clip_factor(self, norm: float) -> float:
        return self.max_norm / norm if self.max_norm > 0 and norm > self.max_norm else 1.0
