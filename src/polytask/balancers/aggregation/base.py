"""Gradient aggregation: a T x P matrix of per-task gradients becomes one update direction.

Most methods only need the T x T Gramian ``G = J J^T``: they compute weights ``w = f(G)`` and
the update is ``J^T w`` (:class:`GramianAggregator`). The few that act on coordinates (GradDrop,
ExcessMTL, MoCo) need ``J`` itself (:class:`JacobianAggregator`).

Modes (the ``mode`` option, default ``"exact"``):

- ``exact``: ``J`` holds the per-task gradients of the shared parameters. They come from the
  gradient engine (:func:`polytask.gradients.shared_gradients`) in factored form, and ``J^T w``
  is applied without another backward pass.
- ``representation`` (the "UB" mode of Sener and Koltun 2018): ``J`` holds the per-task gradients
  of the shared representation ``z`` (T cheap head passes); the combined ``Z^T w`` is then
  back-propagated once through the trunk.

Task-specific parameters always receive the gradient of their own task's loss, unweighted
(torchjd's ``mtl_backward`` does the same): aggregation decides the shared update only.

Every method is usable on its own: ``aggregate(J)`` maps a (T, P) matrix to a (P,) vector.
"""

from __future__ import annotations

import inspect
from abc import abstractmethod
from typing import Any, ClassVar

import torch

from polytask.autograd_graph import reaches_any
from polytask.balancers import gradient_paths
from polytask.balancers.aggregation import collective
from polytask.balancers.base import Balancer, StepContext
from polytask.errors import PolytaskError
from polytask.gradients import accumulate_own_task_gradients

MODES = ("exact", "representation")


class GradientAggregator(Balancer):
    """Base of the gradient-aggregation methods (see the module docstring)."""

    requires: ClassVar[str] = "gradients"
    modes: ClassVar[tuple[str, ...]] = MODES

    def __init__(self, mode: str = "exact") -> None:
        if mode not in MODES:
            raise PolytaskError(f"unknown mode '{mode}' for balancer '{self.name}' (choose from {', '.join(self.modes)})")
        if mode not in self.modes:
            raise PolytaskError(f"balancer '{self.name}' cannot run in mode '{mode}' (modes: {', '.join(self.modes)})")
        self.mode = mode
        self.task_names: list[str] = []
        self._separation: tuple[tuple[int, ...], bool] | None = None
        self._buffer: torch.Tensor | None = None  # per-task gradients of z, reused across steps

    # -- the method -------------------------------------------------------------------------
    @abstractmethod
    def combine(self, jacobian: torch.Tensor | None, gramian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weights (T,), vector (P,) or None)``: the vector is None when the update is ``J^T w``."""

    #: Whether :meth:`combine` needs ``J`` (otherwise it receives None and uses the Gramian).
    needs_jacobian: ClassVar[bool] = False

    def aggregate(self, J: torch.Tensor) -> torch.Tensor:
        """The aggregated (P,) direction of a (T, P) matrix of per-task gradients.

        Stateful methods advance their state, exactly as a training step does.
        """
        if J.ndim != 2:
            raise PolytaskError(f"aggregate expects a (tasks, parameters) matrix, got shape {tuple(J.shape)}")
        gram = J @ J.T if not self.needs_jacobian else J.new_zeros((0, 0))  # J methods ignore the Gramian
        w, vector = self.combine(J if self.needs_jacobian else None, gram)
        return vector if vector is not None else w.to(J.dtype) @ J

    def weights(self, gramian: torch.Tensor) -> torch.Tensor:
        """The (T,) weights of a Gramian-based method (raises for methods that need ``J``)."""
        if self.needs_jacobian:
            raise PolytaskError(f"balancer '{self.name}' needs the full Jacobian, not only its Gramian")
        return self.combine(None, gramian)[0]

    # -- one training step ---------------------------------------------------------------------
    def backward(self, ctx: StepContext) -> torch.Tensor:
        task_params = [list(ctx.task_params.get(t, [])) for t in ctx.task_names]
        reused = self.reused_weights(ctx.losses.shape[0])
        if reused is not None:
            return self._weighted_backward(ctx, task_params, reused)
        if self.mode == "representation":
            z = ctx.representation
            if z is None or not z.requires_grad:
                raise PolytaskError(f"balancer '{self.name}' in representation mode needs the network's shared representation")
            if not self._separates(ctx):
                raise PolytaskError(
                    f"balancer '{self.name}' in representation mode needs every shared parameter to reach the losses "
                    "only through the shared representation; use mode=exact for this architecture"
                )
            if ctx.reducer.world_size > 1:  # data parallel: global Gramian (collective.py)
                return collective.representation_backward(self, ctx, task_params)
            info = gradient_paths.representation_info(ctx, task_params, out=self._buffer)
            if info.dense is not None:
                self._buffer = info.dense
            w, vector = gradient_paths.combine(self, ctx, info.jacobian() if self.needs_jacobian else None, info.gramian)
            direction = vector.view_as(z) if vector is not None else info.direction(w)
            z.backward(direction.detach())
            return w.detach().float()
        separates = self._separates(ctx) if ctx.representation is not None and ctx.representation.grad_fn is not None else None
        if ctx.reducer.world_size > 1:  # data parallel: global Jacobian (collective.py)
            return collective.exact_backward(self, ctx, task_params, separates)
        info = gradient_paths.shared_info(ctx, task_params, separates)
        jac = info.jacobian() if self.needs_jacobian else None
        w, vector = gradient_paths.combine(self, ctx, jac, info.gramian)
        if vector is not None:
            info.apply_vector(vector)
        else:
            info.apply(w)
        return w.detach().float()

    def reused_weights(self, n_tasks: int) -> torch.Tensor | None:
        """Weights this step reuses without looking at gradients (e.g. Nash-MTL between updates),
        or None. A method returning weights here has advanced its own step counter."""
        return None

    def clip_factor(self, norm: float) -> float:
        """Factor applied to reused weights given the norm of ``J^T w`` (1: no clipping)."""
        return 1.0

    def _weighted_backward(self, ctx: StepContext, task_params: list[list[torch.nn.Parameter]], w: torch.Tensor) -> torch.Tensor:
        """A step with known weights: the shared parameters get ``d/dtheta sum_t w_t L_t`` (one
        backward pass, identical in both modes), each task's parameters their own loss gradient."""
        w = w.to(ctx.losses.dtype).to(ctx.losses.device).detach()
        shared = list(ctx.shared_params)
        if shared:
            grads = torch.autograd.grad((w * ctx.losses).sum(), shared, retain_graph=True, allow_unused=True)
            norm = collective.global_norm(grads, ctx) / ctx.grad_scale
            factor = self.clip_factor(norm)
            for p, g in zip(shared, grads):
                if g is not None:
                    g = g * factor if factor != 1.0 else g
                    p.grad = g.detach().clone() if p.grad is None else p.grad.add_(g)
            w = w * factor
        accumulate_own_task_gradients(ctx.losses, task_params)
        return w.detach().float()

    def _separates(self, ctx: StepContext) -> bool:
        """Whether the shared parameters reach the losses only through ``ctx.representation``.

        A property of the architecture, so it is read from the graph once per set of shared
        parameters and remembered."""
        key = tuple(id(p) for p in ctx.shared_params)
        if self._separation is None or self._separation[0] != key:
            z = ctx.representation
            assert z is not None
            self._separation = (key, not reaches_any([ctx.losses.grad_fn], ctx.shared_params, stop=z.grad_fn))
        return self._separation[1]

    # -- bookkeeping ------------------------------------------------------------------------------
    def options(self) -> dict[str, Any]:
        params = inspect.signature(type(self).__init__).parameters
        return {k: getattr(self, k) for k in params if k != "self" and hasattr(self, k)}


class GramianAggregator(GradientAggregator):
    """A method whose update is ``J^T w`` with ``w = f(G)``: subclasses implement :meth:`weights_of`.

    ``drops_absent_tasks``: a task with no label in the batch has a zero gradient (a zero row
    and column of ``G``). Methods whose answer such a row distorts (MGDA would stop: the zero
    vector is then the min-norm point; methods that normalise gradients would divide by zero)
    set it, and are solved on the Gramian of the present tasks; absent tasks get weight 0.
    """

    drops_absent_tasks: bool = False

    @abstractmethod
    def weights_of(self, gramian: torch.Tensor) -> torch.Tensor:
        """(T,) weights from the (T, T) Gramian, given in float64 on the CPU."""

    def combine(self, jacobian: torch.Tensor | None, gramian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        G = gramian.detach().double().cpu()  # T x T: solved on the CPU
        present = torch.diagonal(G) > 0
        if self.drops_absent_tasks and not bool(present.all()):
            w = torch.zeros(G.shape[0], dtype=G.dtype)
            if bool(present.any()):
                idx = present.nonzero().flatten()
                w[idx] = self.weights_of(G[idx][:, idx]).to(w.dtype)
            return w.to(gramian.device), None
        return self.weights_of(G).to(gramian.device), None


class JacobianAggregator(GradientAggregator):
    """A method that needs ``J`` itself: subclasses implement :meth:`direction`."""

    needs_jacobian: ClassVar[bool] = True

    @abstractmethod
    def direction(self, jacobian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weights (T,) for the log, direction (P,))`` from the (T, P) Jacobian."""

    def combine(self, jacobian: torch.Tensor | None, gramian: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert jacobian is not None
        w, d = self.direction(jacobian.detach())
        return w, d
