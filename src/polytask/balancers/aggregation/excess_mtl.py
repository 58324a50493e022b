"""ExcessMTL: exponentiated-gradient weights driven by each task's estimated excess risk.

He et al., "Robust Multi-Task Learning with Excess Risks" (ICML 2024). With the accumulated
squared gradients ``S += J * J`` (an AdaGrad diagonal Hessian estimate, Eq. 7), the excess risk
of task t is ``E_t = sum_p J_tp^2 / sqrt(S_tp + 1e-7)`` (Eq. 6). The first
``k = max(1, n_warmup_steps)`` steps keep the weights uniform and only measure: the mean of
their excess risks is the baseline ``E^0`` (Appendix C.1; with the default ``n_warmup_steps=0``
that is the first step alone, as in the authors' code). Afterwards each excess risk is divided
by its baseline (Section 3.2, scale processing: ``E_t / E^0_t``, 0 where ``E^0_t = 0``) and the
weights follow (Eq. 9, in log space)

    w <- softmax(log w + eta E / E^0),   starting from w = 1/T,   d = J^T w.

So no step uses a raw excess risk, whose scale (about the gradient's L1 norm) would set the
weights: at step 1 they are uniform whatever the scale of the losses. torchjd 0.18 with
``n_warmup_steps=0`` reweights with the raw ``E`` at step 1; its ``n_warmup_steps=1`` is the
authors' algorithm. The weights live on the simplex (the paper's); the authors' code keeps them
summing to T, which scales ``d`` by T.

Needs the Jacobian (element-wise statistics), so only ``mode="exact"``. State: w, S, the
baseline sums, the per-task count of measurements and the step count.

Absent tasks: an absent task's row of S, its baseline and its count are left alone. The
exponentiated-gradient step moves the present tasks past their warm-up, on the face of the
simplex they span (their total weight kept); ``d`` uses the present tasks' weights
renormalised among them.
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import JacobianAggregator, Problem
from polytask.balancers.base import Remembers
from polytask.errors import PolytaskError


class ExcessMTL(Remembers, JacobianAggregator):
    """Excess-risk weighting (see the module docstring)."""

    name = "excess_mtl"
    modes = ("exact",)
    state_fields = ("w", "sq_sum", "baseline_sum", "seen", "steps")

    def __init__(self, robust_step_size: float = 1.0, n_warmup_steps: int = 0, mode: str = "exact") -> None:
        super().__init__(mode)
        if robust_step_size <= 0 or int(n_warmup_steps) < 0:
            raise PolytaskError("excess_mtl needs robust_step_size > 0 and n_warmup_steps >= 0")
        self.robust_step_size, self.n_warmup_steps = float(robust_step_size), int(n_warmup_steps)
        self._reset(0, 0, torch.zeros(0))

    def _reset(self, n_tasks: int, n_params: int, like: torch.Tensor) -> None:
        self.w = like.new_full((n_tasks,), 1.0 / max(n_tasks, 1))
        self.sq_sum = like.new_zeros((n_tasks, n_params))
        self.baseline_sum = like.new_zeros(n_tasks)
        self.seen = torch.zeros(n_tasks, dtype=torch.long)
        self.steps = 0

    def _state_on(self, jacobian: torch.Tensor, n_tasks: int) -> None:
        if self.sq_sum.shape != (n_tasks, jacobian.shape[1]) or self.sq_sum.dtype != jacobian.dtype:
            self._reset(n_tasks, jacobian.shape[1], jacobian)
        for key in ("w", "sq_sum", "baseline_sum"):
            setattr(self, key, getattr(self, key).to(jacobian))  # after a checkpoint load: CPU -> J's device

    def direction(self, jacobian: torch.Tensor, problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
        idx = problem.present.nonzero().flatten()
        self._state_on(jacobian, problem.present.shape[0])
        rows = idx.to(jacobian.device)
        sq = jacobian * jacobian
        self.sq_sum[rows] += sq
        excess = (sq / torch.sqrt(self.sq_sum[rows] + 1e-7)).sum(dim=1)
        warmup = max(1, self.n_warmup_steps)
        measuring = (self.seen[idx] < warmup).to(jacobian.device)
        self.baseline_sum[rows] += torch.where(measuring, excess, torch.zeros_like(excess))
        self.seen[idx] += 1
        self.steps += 1
        ready = rows[~measuring]
        if ready.numel():
            baseline = self.baseline_sum[ready] / warmup
            ratio = torch.where(baseline > 0, excess[~measuring] / torch.where(baseline > 0, baseline, 1.0), 0.0)
            w = self.w[ready]
            self.w[ready] = w.sum() * torch.softmax(torch.log(w) + self.robust_step_size * ratio, dim=0)
        w = self.w[rows]
        w = w / w.sum() if float(w.sum()) > 0 else torch.full_like(w, 1.0 / w.numel())
        return w.clone(), w @ jacobian
