"""Nash-MTL: the Nash bargaining solution between tasks.

Navon et al., "Multi-Task Learning as a Bargaining Game" (ICML 2022). The weights are the
positive solution of

    G alpha = 1 / alpha   (element-wise),   d = J^T alpha,

on the Gramian normalized to unit Frobenius norm (``G / ||G||_F``, as in the authors' code), so
that every task gets ``alpha_t g_t^T d = 1``: the bargaining solution. The authors reach it by
a sequence of convex approximations (cvxpy); here the same first-order condition is solved
directly as a bounded least-squares problem (scipy), warm-started from the last weights. The
result is clipped to ``||d|| <= max_norm`` (0 disables). With ``update_weights_every = k`` the
weights are recomputed every k steps and reused in between (state: the cached weights and the
step counter, saved in checkpoints); in training, a step that reuses them costs one ordinary
backward pass (no per-task gradients).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.optimize import least_squares

from polytask.balancers.aggregation.base import GramianAggregator
from polytask.errors import PolytaskError

BOUNDS = (1e-8, 1e8)


def nash_weights(gram: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The positive solution of ``G alpha = 1/alpha`` (least squares, bounded away from 0)."""
    start = np.clip(start, BOUNDS[0] * 10, BOUNDS[1] / 10)
    res = least_squares(lambda a: gram @ a - 1.0 / a, start, jac=lambda a: gram + np.diag(1.0 / (a * a)),
                        bounds=BOUNDS, xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=100)
    return res.x


class NashMTL(GramianAggregator):
    """Nash bargaining weights (see the module docstring)."""

    name = "nash_mtl"

    def __init__(self, max_norm: float = 1.0, update_weights_every: int = 1, mode: str = "exact") -> None:
        super().__init__(mode)
        if max_norm < 0 or int(update_weights_every) < 1:
            raise PolytaskError("nash_mtl needs max_norm >= 0 and update_weights_every >= 1")
        self.max_norm, self.update_weights_every = float(max_norm), int(update_weights_every)
        self.step = 0
        self.alpha: torch.Tensor | None = None

    def weights_of(self, gramian: torch.Tensor) -> torch.Tensor:
        m = gramian.shape[0]
        if self.alpha is None or self.alpha.shape[0] != m or self.step % self.update_weights_every == 0:
            scale = float(torch.linalg.norm(gramian))
            start = self.alpha.numpy() if self.alpha is not None and self.alpha.shape[0] == m else np.ones(m)
            if scale > 0:
                self.alpha = torch.as_tensor(nash_weights((gramian / scale).cpu().numpy(), start), dtype=torch.float64)
            else:
                self.alpha = torch.ones(m, dtype=torch.float64)
        self.step += 1
        alpha = self.alpha.to(gramian.dtype)
        if self.max_norm > 0:
            norm = float(torch.sqrt((alpha @ gramian @ alpha).clamp(min=0.0)))
            if norm > self.max_norm:
                alpha = alpha * (self.max_norm / norm)
        return alpha

    def reused_weights(self, n_tasks: int) -> torch.Tensor | None:
        """Between updates the cached weights apply without computing any Gramian."""
        if self.alpha is None or self.alpha.shape[0] != n_tasks or self.step % self.update_weights_every == 0:
            return None
        self.step += 1
        return self.alpha.clone()

    def clip_factor(self, norm: float) -> float:
        return self.max_norm / norm if self.max_norm > 0 and norm > self.max_norm else 1.0

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"step": self.step}
        if self.alpha is not None:
            state["alpha"] = self.alpha.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state.get("step", 0))
        self.alpha = torch.as_tensor(state["alpha"], dtype=torch.float64).clone() if "alpha" in state else None
