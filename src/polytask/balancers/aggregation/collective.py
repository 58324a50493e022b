"""Gradient aggregation across the processes of a data-parallel run, exact for the global batch.

Each process holds a shard of the global batch; the loss vector carries the global values with
gradients through this process's rows only (see :class:`polytask.balancers.base.Reducer`), so
a per-task gradient computed here is this process's *contribution* ``J^r`` and the global
``J = sum_r J^r``. What each mode adds over processes before the weights are computed:

- ``exact``: ``J`` itself (T x P floats): the Gramian of a sum is not the sum of the Gramians.
  Every process then has the same ``G = J J^T`` and so the same weights; it contributes
  ``(J^r)^T w`` (factored, as in one process) or, for a method that returns its own direction
  ``d`` from ``J``, ``d / world_size``.
- ``representation``: the rows of ``z`` are split over processes, so ``G = sum_r Z^r (Z^r)^T``
  (T x T floats); a method that needs ``Z`` itself gathers its rows (T x N x k floats) and each
  process back-propagates its own rows of the direction.

The trainer then adds the parameters' gradients over processes (P floats, as
``DistributedDataParallel`` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from polytask.balancers import gradient_paths
from polytask.balancers.base import StepContext


def representation_backward(agg: Any, ctx: StepContext, task_params: list[list[torch.nn.Parameter]],
                            problem_of: Callable[[torch.Tensor, int], Any]) -> torch.Tensor:
    """One step of ``agg`` in representation mode over the processes of ``ctx.reducer``;
    ``problem_of(values, n_params)`` gives the step's Problem (the global presence mask)."""
    z, reducer = ctx.representation, ctx.reducer
    assert z is not None
    info = gradient_paths.representation_info(ctx, task_params)
    n_tasks = ctx.losses.shape[0]
    if agg.needs_jacobian:  # the rows of every process: this process backs its own rows
        width = math.prod(z.shape[1:])  # named, not -1: this process's shard may have no rows
        full, mine = reducer.gather(info.jacobian().reshape(n_tasks, z.shape[0], width), dim=1)
        flat = full.reshape(n_tasks, -1)
        w, vector = gradient_paths.combine(agg, ctx, flat, full.new_zeros((0, 0)), problem_of(flat, flat.shape[1]))
        assert vector is not None
        direction = vector.reshape(full.shape[1], width)[mine].reshape(z.shape)
    else:
        gramian = reducer.sum(info.gramian)  # the rounding level: about world_size shards of z
        w, _ = gradient_paths.combine(agg, ctx, None, gramian, problem_of(gramian, z.numel() * reducer.world_size))
        direction = info.direction(w)
    z.backward(direction.detach())
    return w.detach().float()


def exact_backward(agg: Any, ctx: StepContext, task_params: list[list[torch.nn.Parameter]],
                   separates: bool | None, problem_of: Callable[[torch.Tensor], Any]) -> torch.Tensor:
    """One step of ``agg`` in exact mode over the processes of ``ctx.reducer``;
    ``problem_of(values)`` gives the step's Problem (the global presence mask)."""
    reducer = ctx.reducer
    info = gradient_paths.shared_info(ctx, task_params, separates)
    jacobian = reducer.sum(info.jacobian())
    gramian = jacobian @ jacobian.T
    w, vector = gradient_paths.combine(agg, ctx, jacobian if agg.needs_jacobian else None, gramian, problem_of(gramian))
    if vector is not None:
        info.apply_vector(reducer.share(vector))
    else:
        info.apply(w)
    return w.detach().float()


def global_norm(grads: Sequence[torch.Tensor | None], ctx: StepContext) -> float:
    """``||sum_r g^r||`` of per-process gradient contributions ``grads``, in float64."""
    parts = [g.detach().reshape(-1).double() for g in grads if g is not None]
    if not parts:
        return 0.0
    flat = ctx.reducer.sum(torch.cat(parts)) if ctx.reducer.world_size > 1 else torch.cat(parts)
    return float(flat.norm())
