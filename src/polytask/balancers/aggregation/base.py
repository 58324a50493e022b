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

Absent tasks: ``aggregate(J, present=mask)`` (in training, the trainer's ``StepContext.present``)
solves the method on the present rows only; absent tasks get weight 0 and their share of the
method's state is left as it was (each stateful method's docstring says what that means for
it). Without a mask every row is a present task, as in the papers: a zero row is a zero
gradient (for MGDA the min-norm point is then 0).

Precision: the weights are computed in float64 on the CPU, but rank decisions and tolerances
follow the precision the gradients were computed in (:class:`Problem`): a float32 Gramian is
only known to about ``eps_32 sqrt(P)`` relative to its largest entry, whatever it is cast to.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch

from polytask.balancers import gradient_paths
from polytask.balancers.aggregation import collective
from polytask.balancers.base import Balancer, StepContext, presence_mask
from polytask.errors import PolytaskError
from polytask.gradients import TaskLayout, accumulate_own_task_gradients

MODES = ("exact", "representation")


@dataclass(frozen=True)
class Problem:
    """What a method knows about the (sub-)problem it solves at one step.

    Attributes:
        present: (T,) bool over all tasks; the Gramian or Jacobian handed over holds these rows.
        eps: unit roundoff of the dtype the gradients were computed in.
        n_params: length P of the gradients (of the dot products behind the Gramian).
    """

    present: torch.Tensor
    eps: float
    n_params: int = 1
    #: Whether every task is present (known without a look at ``present`` when it was None).
    all_present: bool | None = None

    def __post_init__(self) -> None:
        if self.all_present is None:
            object.__setattr__(self, "all_present", bool(self.present.all()))  # a frozen dataclass

    @property
    def entry_error(self) -> float:
        """Relative error of a computed Gramian entry: a few roundings (4 eps) plus the random-walk
        growth ``eps sqrt(P)`` of a P-term dot product (measured in float32 up to P = 4e6: at most
        0.6 of it)."""
        return self.eps * (4.0 + math.sqrt(max(self.n_params, 1)))

    @staticmethod
    def of(values: torch.Tensor, present: torch.Tensor | None, n_params: int) -> "Problem":
        eps = float(torch.finfo(values.dtype).eps) if values.is_floating_point() else float(torch.finfo(torch.float64).eps)
        return Problem(presence_mask(present, int(values.shape[0])), eps, int(n_params), True if present is None else None)


class GradientAggregator(Balancer):
    """Base of the gradient-aggregation methods (see the module docstring)."""

    requires: ClassVar[str] = "gradients"
    modes: ClassVar[tuple[str, ...]] = MODES

    def __init__(self, mode: str = "exact") -> None:
        super().__init__()
        if mode not in MODES:
            raise PolytaskError(f"unknown mode '{mode}' for balancer '{self.name}' (choose from {', '.join(self.modes)})")
        if mode not in self.modes:
            raise PolytaskError(f"balancer '{self.name}' cannot run in mode '{mode}' (modes: {', '.join(self.modes)})")
        self.mode = mode
        self._separates = gradient_paths.Separation()  # whether the shared parameters reach the losses only through z
        self._buffer: torch.Tensor | None = None  # per-task gradients of z, reused across steps
        self._layout: TaskLayout | None = None  # the task parameters, resolved once

    # -- the method -------------------------------------------------------------------------
    @abstractmethod
    def combine(self, jacobian: torch.Tensor | None, gramian: torch.Tensor, problem: Problem) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(weights (T,), vector (P,) or None)``: the vector is None when the update is ``J^T w``."""

    #: Whether :meth:`combine` needs ``J`` (otherwise it receives None and uses the Gramian).
    needs_jacobian: ClassVar[bool] = False

    def aggregate(self, J: torch.Tensor, present: torch.Tensor | None = None) -> torch.Tensor:
        """The aggregated (P,) direction of a (T, P) matrix of per-task gradients.

        ``present``: (T,) bool, the tasks with a label (None: all). Stateful methods advance
        their state, exactly as a training step does.
        """
        if J.ndim != 2:
            raise PolytaskError(f"aggregate expects a (tasks, parameters) matrix, got shape {tuple(J.shape)}")
        gram = J @ J.T if not self.needs_jacobian else J.new_zeros((0, 0))  # J methods ignore the Gramian
        w, vector = self.combine(J if self.needs_jacobian else None, gram, Problem.of(J, present, J.shape[1]))
        return vector if vector is not None else w.to(J.dtype) @ J

    def weights(self, gramian: torch.Tensor, present: torch.Tensor | None = None, n_params: int = 1) -> torch.Tensor:
        """The (T,) weights of a Gramian-based method (raises for methods that need ``J``).

        ``n_params``: the length of the gradients behind ``gramian`` (sets its rounding level)."""
        if self.needs_jacobian:
            raise PolytaskError(f"balancer '{self.name}' needs the full Jacobian, not only its Gramian")
        return self.combine(None, gramian, Problem.of(gramian, present, n_params))[0]

    # -- one training step ---------------------------------------------------------------------
    def backward(self, ctx: StepContext) -> torch.Tensor:
        task_params = [list(ctx.task_params.get(t, [])) for t in ctx.task_names]
        present = ctx.presence()
        reused = self.reused_weights(present)
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
                return collective.representation_backward(self, ctx, task_params, lambda v, n: Problem.of(v, present, n))
            self._layout = TaskLayout.of(task_params, self._layout)
            info = gradient_paths.representation_info(ctx, task_params, out=self._buffer, layout=self._layout)
            if info.dense is not None:
                self._buffer = info.dense
            problem = Problem.of(info.gramian, ctx.present, z.numel())  # None: all present, known without a look
            w, vector = gradient_paths.combine(self, ctx, info.jacobian() if self.needs_jacobian else None, info.gramian, problem)
            direction = vector.view_as(z) if vector is not None else info.direction(w)
            z.backward(direction.detach())
            return w.detach().float()
        separates = self._separates(ctx) if ctx.representation is not None and ctx.representation.grad_fn is not None else None
        n_shared = sum(p.numel() for p in ctx.shared_params)
        if ctx.reducer.world_size > 1:  # data parallel: global Jacobian (collective.py)
            return collective.exact_backward(self, ctx, task_params, separates, lambda v: Problem.of(v, present, n_shared))
        info = gradient_paths.shared_info(ctx, task_params, separates)
        jac = info.jacobian() if self.needs_jacobian else None
        problem = Problem.of(info.gramian, ctx.present, n_shared)
        w, vector = gradient_paths.combine(self, ctx, jac, info.gramian, problem)
        if vector is not None:
            info.apply_vector(vector)
        else:
            info.apply(w)
        return w.detach().float()

    def reused_weights(self, present: torch.Tensor) -> torch.Tensor | None:
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


def _spread(values: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """(T,) float64 weights: ``values`` on the present tasks, 0 on the absent ones."""
    out = torch.zeros(present.shape[0], dtype=torch.float64, device=values.device)
    out[present.to(values.device)] = values.to(torch.float64)
    return out


class GramianAggregator(GradientAggregator):
    """A method whose update is ``J^T w`` with ``w = f(G)``: subclasses implement :meth:`weights_of`,
    which sees the Gramian of the present tasks only (absent tasks get weight 0)."""

    @abstractmethod
    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        """Weights of the present tasks from their Gramian, given in float64 on the CPU."""

    def combine(self, jacobian: torch.Tensor | None, gramian: torch.Tensor, problem: Problem) -> tuple[torch.Tensor, torch.Tensor | None]:
        G = gramian.detach().to("cpu", torch.float64)  # T x T: solved on the CPU
        if problem.all_present:
            return self.weights_of(G, problem).to(gramian.device, torch.float64, copy=True), None
        present = problem.present
        if not bool(present.any()):
            return torch.zeros(G.shape[0], dtype=torch.float64, device=gramian.device), None
        if not bool(present.all()):
            idx = present.nonzero().flatten()
            G = G[idx][:, idx]
        w = self.weights_of(G, problem)
        return _spread(w, present).to(gramian.device), None


class JacobianAggregator(GradientAggregator):
    """A method that needs ``J`` itself: subclasses implement :meth:`direction`, which sees the
    rows of the present tasks only."""

    needs_jacobian: ClassVar[bool] = True

    @abstractmethod
    def direction(self, jacobian: torch.Tensor, problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
        """``(weights of the present tasks, for the log; direction (P,))`` from their rows of J."""

    def combine(self, jacobian: torch.Tensor | None, gramian: torch.Tensor, problem: Problem) -> tuple[torch.Tensor, torch.Tensor | None]:
        assert jacobian is not None
        J = jacobian.detach()
        if problem.all_present:
            w, d = self.direction(J, problem)
            return w.to(torch.float64, copy=True), d
        present = problem.present
        if not bool(present.any()):
            return torch.zeros(J.shape[0], dtype=torch.float64, device=J.device), J.new_zeros(J.shape[1])
        rows = J if bool(present.all()) else J[present.to(J.device)]
        w, d = self.direction(rows, problem)
        return _spread(w, present), d
