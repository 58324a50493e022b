"""ExcessMTL: exponentiated-gradient weights driven by each task's estimated excess risk.

He et al., "Robust Multi-Task Learning with Excess Risks" (ICML 2024). With the accumulated
squared gradients ``S += J * J`` (an AdaGrad diagonal Hessian estimate, Eq. 7), the excess risk
of task t is ``E_t = sum_p J_tp^2 / sqrt(S_tp + 1e-7)`` (Eq. 6). The first excess risks (or their
mean over ``n_warmup_steps`` uniform-weight steps, Appendix C.1) are the baseline ``E^0``; later
ones are divided by ``E^0 + 1e-7``. The weights follow (Eq. 9, in log space)

    w <- softmax(log w + eta E),   starting from w = 1/T,   d = J^T w.

Needs the Jacobian (element-wise statistics), so only ``mode="exact"``. State: w, S, E^0 and
the step count.
"""

from __future__ import annotations

from typing import Any

import torch

from polytask.balancers.aggregation.base import JacobianAggregator
from polytask.errors import PolytaskError


class ExcessMTL(JacobianAggregator):
    """Excess-risk weighting (see the module docstring)."""

    name = "excess_mtl"
    modes = ("exact",)

    def __init__(self, robust_step_size: float = 1.0, n_warmup_steps: int = 0, mode: str = "exact") -> None:
        super().__init__(mode)
        if robust_step_size <= 0 or int(n_warmup_steps) < 0:
            raise PolytaskError("excess_mtl needs robust_step_size > 0 and n_warmup_steps >= 0")
        self.robust_step_size, self.n_warmup_steps = float(robust_step_size), int(n_warmup_steps)
        self._reset()

    def _reset(self) -> None:
        self.w: torch.Tensor | None = None
        self.sq_sum: torch.Tensor | None = None
        self.baseline: torch.Tensor | None = None
        self.warmup_sum: torch.Tensor | None = None
        self.steps = 0

    def direction(self, jacobian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m, n = jacobian.shape
        if self.sq_sum is None or self.sq_sum.shape != (m, n) or self.sq_sum.dtype != jacobian.dtype:
            self._reset()
            self.sq_sum = jacobian.new_zeros((m, n))
            self.warmup_sum = jacobian.new_zeros(m)
            self.w = jacobian.new_full((m,), 1.0 / m)
        assert self.w is not None and self.warmup_sum is not None
        sq = jacobian * jacobian
        self.sq_sum.add_(sq)
        excess = (sq / torch.sqrt(self.sq_sum + 1e-7)).sum(dim=1)
        self.steps += 1
        if self.steps <= self.n_warmup_steps:
            self.warmup_sum.add_(excess)
            return self.w.clone(), self.w @ jacobian
        if self.baseline is None:
            if self.n_warmup_steps > 0:
                self.baseline = self.warmup_sum / self.n_warmup_steps
                excess = excess / (self.baseline + 1e-7)
            else:
                self.baseline = excess.clone()
        else:
            excess = excess / (self.baseline + 1e-7)
        self.w = torch.softmax(torch.log(self.w) + self.robust_step_size * excess, dim=0)
        return self.w.clone(), self.w @ jacobian

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"steps": self.steps}
        for key in ("w", "sq_sum", "baseline", "warmup_sum"):
            value = getattr(self, key)
            if value is not None:
                state[key] = value.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._reset()
        self.steps = int(state.get("steps", 0))
        for key in ("w", "sq_sum", "baseline", "warmup_sum"):
            if key in state:
                setattr(self, key, torch.as_tensor(state[key]).clone())
