"""``gradnorm``: gradient normalization (Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm:
Gradient Normalization for Adaptive Loss Balancing in Deep Multitask Networks", ICML 2018).

Learnable task weights ``w_t`` (starting at 1) scale the losses: the network follows
``grad sum_t w_t L_t``. The weights themselves minimize

    L_grad = sum_t | G_t - Gbar * r_t^alpha |,
    G_t = || grad_W (w_t L_t) || = w_t || grad_W L_t ||,   Gbar = mean_t G_t,
    r_t = Ltilde_t / mean_k Ltilde_k,                       Ltilde_t = L_t / L_t(0),

where ``W`` is the last shared layer (``StepContext.last_shared_params``, falling back to all
shared parameters), ``L_t(0)`` is the task's first loss (in a batch where it is present), and the target
``Gbar r_t^alpha`` is held constant. ``L_grad`` is differentiated only with respect to ``w``:
``dL_grad/dw_t = sign(G_t - target_t) ||grad_W L_t||``, added to ``w.grad``; the trainer's
optimizer then steps ``w`` (they are this balancer's ``nn.Parameter``). Before each use the
weights are renormalized so that ``sum_t w_t = T`` (and kept positive). ``alpha`` sets the
strength of the pull towards equal training rates: with ``alpha = 0`` the gradient norms
``G_t`` are simply driven together. The applied weights are ``w``.

Absent tasks (``StepContext.present``): left out of ``L_grad``, of ``Gbar`` and of the mean
training rate (an absent task's zero gradient would read as ``G_t = 0`` and pull its weight up);
their weights get no gradient from that step. State: ``L(0)`` (extra state; NaN until a task is
first present).
"""

from __future__ import annotations

import torch
from torch import nn

from polytask.balancers.base import Balancer, Remembers, StepContext
from polytask.balancers.gradient_paths import Separation, task_jacobian
from polytask.balancers.option_checks import real
from polytask.errors import PolytaskError
from polytask.gradients import TaskLayout, backward_with_gradient_norms, head_factors, per_task_gradient_norms

MIN_WEIGHT = 1e-4


class GradNorm(Remembers, Balancer):
    """GradNorm (Chen et al. 2018) on the last shared layer; weights renormalized to sum ``T``.

    Args:
        alpha: restoring-force exponent (>= 0); the paper's default range is 0.5 to 3, 1.5 common.
    """

    name = "gradnorm"
    requires = "gradients"
    state_fields = ("initial_losses",)

    def __init__(self, alpha: float = 1.5) -> None:
        super().__init__()
        self.alpha = real(self.name, "alpha", alpha, low=0.0)
        self.loss_weights: nn.Parameter | None
        self.register_parameter("loss_weights", None)
        self.initial_losses: torch.Tensor | None = None
        self._layout: TaskLayout | None = None  # the task parameters, resolved once
        self._separates = Separation()
        self._settled: torch.Tensor | None = None  # initial_losses once every entry is known and positive

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        self.loss_weights = nn.Parameter(torch.ones(len(task_names)))
        self.initial_losses = None

    def _w(self) -> nn.Parameter:
        assert self.loss_weights is not None, "setup() was not called"
        return self.loss_weights

    def normalized_weights(self) -> torch.Tensor:
        """Renormalize ``w`` in place to positive values summing to ``T``; return it detached."""
        w = self._w()
        with torch.no_grad():
            w.clamp_(min=MIN_WEIGHT)
            w.div_(w.mean())  # sum T
        return w.detach()

    def backward(self, ctx: StepContext) -> torch.Tensor:
        params = list(ctx.last_shared_params) or list(ctx.shared_params)
        if not params:
            raise PolytaskError("balancer 'gradnorm' needs shared parameters, and this network has none")
        values = ctx.losses.detach()
        present = None if ctx.present is None else ctx.presence().to(values.device)  # None: every task present
        w = self.normalized_weights()
        init, settled = self._initial(values, present)
        grad_norms = self._norms_and_backward(ctx, params, w)  # ||grad_W L_t||; the network's gradient applied
        known = None if settled and present is None else (init > 0) if present is None else present & (init > 0)
        grad_w = self._weight_gradient(w.to(grad_norms) * grad_norms, grad_norms, values / init, known)
        if present is not None:
            grad_w = torch.where(present, grad_w, torch.zeros_like(grad_w))
        param = self._w()
        param.grad = grad_w.to(param) if param.grad is None else param.grad + grad_w.to(param)
        return w.clone()

    def _initial(self, values: torch.Tensor, present: torch.Tensor | None) -> tuple[torch.Tensor, bool]:
        """``L_t(0)``: each task's first present loss (NaN until then), and whether every one is
        known and positive (then the tensor no longer changes, and is not looked at again)."""
        init = self.initial_losses
        if init is not None and init is self._settled:
            return init, True
        init = torch.full_like(values, float("nan")) if init is None else init.to(values)
        fresh = torch.isnan(init) if present is None else torch.isnan(init) & present
        init = torch.where(fresh, values, init)
        self.initial_losses = init
        settled = bool((init > 0).all())  # False for NaN
        self._settled = init if settled else None
        return init, settled

    def _weight_gradient(self, G: torch.Tensor, grad_norms: torch.Tensor, ratio: torch.Tensor, known: torch.Tensor | None) -> torch.Tensor:
        """``dL_grad/dw_t = sign(G_t - Gbar r_t^alpha) ||grad_W L_t||`` over the present tasks
        (``known``: a positive ``L_t(0)``, None for every task; the others count as training at
        the mean rate)."""
        if known is None:
            target = G.mean() * (ratio / ratio.mean().clamp_min(1e-12)).pow(self.alpha)
            return torch.sign(G - target) * grad_norms
        if not bool(known.any()):
            return torch.zeros_like(G)
        ratio = torch.where(known, ratio, torch.ones_like(ratio))
        relative = ratio / ratio[known].mean().clamp_min(1e-12)
        target = G[known].mean() * relative.pow(self.alpha)
        return torch.sign(G - target) * grad_norms

    def _norms_and_backward(self, ctx: StepContext, params: list[torch.Tensor], w: torch.Tensor) -> torch.Tensor:
        """``||grad_W L_t||`` per task, then ``grad sum_t w_t L_t`` into the network's ``.grad``.

        When the shared parameters reach the losses only through ``z`` and the heads read ``z``
        through linear layers, one pass of ``sum_t w_t L_t`` through the heads gives the heads
        their gradient and the factored ``w_t dL_t/dz`` (:func:`head_factors`); the norms follow
        from those factors (``G_t / w_t``, with ``G_t = ||grad_W (w_t L_t)||``) and one pass
        from ``z`` finishes the step: the heads are not differentiated twice."""
        weighted = w.to(ctx.losses) * ctx.losses
        z = ctx.representation
        factors = None
        if self._factorable(ctx):
            assert z is not None
            task_params = [list(ctx.task_params.get(t, [])) for t in ctx.task_names]
            self._layout = TaskLayout.of(task_params, self._layout)
            in_one_pass = backward_with_gradient_norms(weighted, z, params, self._layout)
            if in_one_pass is not None:
                scaled = in_one_pass / w.to(weighted)
                return scaled if ctx.grad_scale == 1.0 else scaled / ctx.grad_scale
            factors = head_factors(weighted, z, task_params, self._layout)
        if factors is None:
            norms = self._norms(ctx, params)
            weighted.sum().backward()
            return norms
        scaled = per_task_gradient_norms(weighted, params, z, factors=factors) / w.to(weighted)
        z.backward(factors.total().view_as(z).to(z.dtype))
        return scaled if ctx.grad_scale == 1.0 else scaled / ctx.grad_scale

    def _factorable(self, ctx: StepContext) -> bool:
        """One process, graph readable, a 2-D ``z`` that carries every shared parameter's gradient."""
        z = ctx.representation
        return (ctx.reducer.world_size == 1 and not ctx.compiled and z is not None and z.ndim == 2 and z.grad_fn is not None
                and bool(ctx.shared_params) and self._separates(ctx))

    def gradient_norms(self, ctx: StepContext) -> torch.Tensor:
        """``G_t = w_t ||grad_W L_t||`` at the current weights (for inspection and tests)."""
        params = list(ctx.last_shared_params) or list(ctx.shared_params)
        return self._w().detach() * self._norms(ctx, params)

    def _norms(self, ctx: StepContext, params: list[torch.Tensor]) -> torch.Tensor:
        """``||grad_W L_t||`` per task over the global batch: factored through the heads where
        they allow it (one process, graph readable), else the norms of the summed Jacobian."""
        if ctx.reducer.world_size > 1 or ctx.compiled:
            return ctx.reducer.sum(task_jacobian(ctx, ctx.losses, params)).norm(dim=1)
        task_params = [list(ctx.task_params.get(t, [])) for t in ctx.task_names]
        self._layout = TaskLayout.of(task_params, self._layout)
        norms = per_task_gradient_norms(ctx.losses, params, ctx.representation, task_params, self._layout)
        return norms if ctx.grad_scale == 1.0 else norms / ctx.grad_scale
