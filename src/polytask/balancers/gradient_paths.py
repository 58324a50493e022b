"""Which path of the gradient engine a step takes, and the gradient scale, for the methods
that read per-task gradients.

- The fast paths of :mod:`polytask.gradients` (graph reading, batched over tasks), or, when
  the step's network runs compiled (``StepContext.compiled``), the generic path of
  :mod:`polytask.generic_gradients` (one backward pass per task).
- Under fp16 gradient scaling the gradients read from the graph carry the factor
  ``S = StepContext.grad_scale``: the Jacobian is divided by ``S`` and the Gramian by ``S^2``
  before a method sees them, and a direction a method returns is multiplied by ``S`` so that it
  joins the other (scaled) gradients, which the trainer unscales together.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from polytask.autograd_graph import reaches_any
from polytask.balancers.base import StepContext
from polytask.generic_gradients import loop_jacobian, loop_representation, loop_shared_gradients
from polytask.gradients import per_task_gradients, representation_step, shared_gradients


class Separation:
    """Whether the shared parameters reach the losses only through ``ctx.representation`` (so
    that a pass from ``z`` alone gives them their whole gradient). A property of the
    architecture: read from the graph once per set of shared parameters and remembered."""

    def __init__(self) -> None:
        self._known: tuple[tuple[int, ...], bool] | None = None

    def __call__(self, ctx: StepContext) -> bool:
        key = tuple(id(p) for p in ctx.shared_params)
        if self._known is None or self._known[0] != key:
            z = ctx.representation
            assert z is not None
            self._known = (key, not reaches_any([ctx.losses.grad_fn], ctx.shared_params, stop=z.grad_fn))
        return self._known[1]


def task_jacobian(ctx: StepContext, losses: torch.Tensor, params: Sequence[torch.Tensor], retain_graph: bool = True) -> torch.Tensor:
    """The true (T, P) per-task gradients of ``losses`` (unscaled), on this process's rows."""
    jac = loop_jacobian(losses, params) if ctx.compiled else per_task_gradients(losses, params, retain_graph=retain_graph)
    return jac if ctx.grad_scale == 1.0 else jac / ctx.grad_scale


def shared_info(ctx: StepContext, task_params: list[list[torch.nn.Parameter]], separates: bool | None) -> Any:
    """Exact mode: the shared parameters' per-task gradients (factored, or dense when compiled)."""
    if ctx.compiled:
        return loop_shared_gradients(ctx.losses, ctx.shared_params, task_params)
    return shared_gradients(ctx.losses, ctx.shared_params, task_params, ctx.representation, separates)


def representation_info(ctx: StepContext, task_params: list[list[torch.nn.Parameter]], out: torch.Tensor | None = None,
                        layout: Any = None) -> Any:
    """Representation mode: the per-task gradients of ``z`` (``layout``: the task parameters
    resolved once per run, :class:`polytask.gradients.TaskLayout`)."""
    assert ctx.representation is not None
    if ctx.compiled:
        return loop_representation(ctx.losses, ctx.representation, task_params)
    return representation_step(ctx.losses, ctx.representation, task_params, out=out, layout=layout)


def combine(agg: Any, ctx: StepContext, jacobian: torch.Tensor | None, gramian: torch.Tensor,
            problem: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``agg.combine`` on the true (unscaled) gradient information and the step's ``problem``
    (:class:`~polytask.balancers.aggregation.base.Problem`: the presence mask, the rounding
    level); a returned direction in the step's scaled units."""
    s = ctx.grad_scale
    if s == 1.0:
        return agg.combine(jacobian, gramian, problem)
    w, vector = agg.combine(None if jacobian is None else jacobian / s, gramian / (s * s), problem)
    return w, None if vector is None else vector * s
