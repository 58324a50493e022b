"""``db_mtl``: dual-balancing multi-task learning (Lin, Ye, Xu, Shi, Zhang and Kwok,
"Dual-Balancing for Multi-Task Learning", 2023).

Two balancing steps:

1. *loss scale*: every task is trained on ``log(L_t + eps)``, whose gradient
   ``grad L_t / (L_t + eps)`` no longer depends on the scale of ``L_t``;
2. *gradient magnitude*: per-task gradients of the log-losses with respect to the shared
   parameters, ``g_t = grad_theta log(L_t + eps)``, are smoothed by an exponential moving average
   ``ghat_t <- beta_k ghat_t + (1 - beta_k) g_t`` with ``beta_k = beta / k^sigma`` at step
   ``k = 1, 2, ...`` (``ghat`` starts at 0), and rescaled to the largest norm:

       grad_shared = sum_t alpha_t ghat_t,      alpha_t = max_k ||ghat_k|| / (||ghat_t|| + 1e-8).

Task-specific parameters receive ``grad sum_t log(L_t + eps)``. The per-task gradients come from
one batched vector-Jacobian product (:func:`polytask.gradients.per_task_gradients`). The applied
weights reported are the scales ``alpha_t``. State: the step count and the EMA ``ghat`` (T x P).

Absent tasks (``StepContext.present``): an absent task's EMA is frozen (its zero gradient is not
a measurement; it would shrink ``ghat_t`` and blow ``alpha_t`` up), and it is left out of the
largest norm and of the update (``alpha_t = 0``). ``k`` counts every step.
"""

from __future__ import annotations

import torch

from polytask.balancers.base import Balancer, Remembers, StepContext
from polytask.balancers.gradient_paths import task_jacobian
from polytask.balancers.option_checks import real
from polytask.gradients import accumulate_flat_gradient, accumulate_own_task_gradients

EPS = 1e-8


class DualBalancing(Remembers, Balancer):
    """DB-MTL (Lin et al. 2023): log-losses, EMA of per-task shared gradients scaled to the
    largest norm.

    Args:
        beta: EMA coefficient in [0, 1) (paper: 0.9).
        beta_sigma: decay exponent ``sigma >= 0`` of ``beta_k = beta / k^sigma`` (paper code: 0).
    """

    name = "db_mtl"
    requires = "gradients"
    state_fields = ("steps", "buffer")

    def __init__(self, beta: float = 0.9, beta_sigma: float = 0.0) -> None:
        super().__init__()
        self.beta = real(self.name, "beta", beta, low=0.0, high=1.0, high_open=True)
        self.beta_sigma = real(self.name, "beta_sigma", beta_sigma, low=0.0)
        self.steps = 0
        self.buffer: torch.Tensor | None = None

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        self.steps = 0
        self.buffer = None

    def combine(self, grads: torch.Tensor, present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the EMA with this step's (T, P) log-loss gradients of the present tasks
        (``present``: (T,) bool, None for all); return the combined (P,) shared gradient and the
        scales ``alpha`` (T,)."""
        self.steps += 1
        beta_k = self.beta / self.steps**self.beta_sigma
        mask = torch.ones(grads.shape[0], dtype=torch.bool) if present is None else present
        mask = mask.to(grads.device)
        previous = torch.zeros_like(grads) if self.buffer is None else self.buffer.to(grads)
        self.buffer = torch.where(mask[:, None], grads + beta_k * (previous - grads), previous)
        norms = self.buffer.norm(dim=1)
        if not bool(mask.any()):
            return torch.zeros_like(grads[0]), torch.zeros_like(norms)
        alpha = torch.where(mask, norms[mask].max() / (norms + 1e-8), torch.zeros_like(norms))
        return alpha @ self.buffer, alpha

    def backward(self, ctx: StepContext) -> torch.Tensor:
        log_losses = torch.log(ctx.losses + EPS)
        shared = list(ctx.shared_params)
        task_params = [p for t in ctx.task_names for p in ctx.task_params.get(t, [])]
        n_tasks = log_losses.shape[0]
        if shared:
            grads = ctx.reducer.sum(task_jacobian(ctx, log_losses, shared, retain_graph=bool(task_params)))
            combined, alpha = self.combine(grads, ctx.presence())
            accumulate_flat_gradient(shared, ctx.reducer.share(combined) * ctx.grad_scale)
        else:
            alpha = torch.ones(n_tasks, dtype=log_losses.dtype, device=log_losses.device)
        if task_params:
            accumulate_own_task_gradients(log_losses, [ctx.task_params.get(t, []) for t in ctx.task_names])
        return alpha.detach()
