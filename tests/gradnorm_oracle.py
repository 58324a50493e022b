"""GradNorm's weight gradient by autograd of its loss (Chen et al. 2018), for the tests: with
``G_t = ||grad_W (w_t L_t)||`` differentiable in ``w`` and the target ``Gbar r_t^alpha`` held
constant, ``dL_grad/dw`` where ``L_grad = sum_t |G_t - Gbar r_t^alpha|``."""

from __future__ import annotations

import torch

from polytask.balancers import Balancer, StepContext


def gradnorm_weight_gradient(b: Balancer, ctx: StepContext, alpha: float) -> torch.Tensor:
    """The oracle for ``b.loss_weights.grad`` after ``b.backward(ctx)`` (call it before)."""
    w = b.normalized_weights().to(torch.float64).clone().requires_grad_(True)  # type: ignore[attr-defined]
    W = list(ctx.last_shared_params)
    G = torch.stack([
        torch.cat([g.reshape(-1) for g in torch.autograd.grad(w[t] * ctx.losses[t], W, create_graph=True, retain_graph=True)]).norm()
        for t in range(w.shape[0])
    ])
    ratio = ctx.losses.detach() / b.initial_losses.to(torch.float64)  # type: ignore[union-attr]
    target = (G.mean() * (ratio / ratio.mean()) ** alpha).detach()
    return torch.autograd.grad((G - target).abs().sum(), w, retain_graph=True)[0]
