"""The gradient engine's generic path: per-task gradients from one plain backward pass per task.

The fast paths of :mod:`polytask.gradients` read the autograd graph (linear layers and their
saved inputs) and batch the backward pass over tasks with ``vmap``; a compiled network
(``torch.compile``) offers neither (its graph is one opaque node, and its backward cannot be
vmapped). This path assumes nothing: ``J[t] = dL_t/dtheta`` from T ``autograd.grad`` calls
(the graph kept), each task's own parameters from one pass of ``sum_t L_t``. Exact, T times
the cost of a backward pass. Per-task gradients are widened to float32 under autocast.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from polytask.gradients import (
    RepresentationGradients, accumulate_flat_gradient, accumulate_own_task_gradients, cut, parameter_source, widen,
)


def loop_jacobian(losses: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """The (T, P) Jacobian of ``losses`` with respect to ``params``, one backward pass per task."""
    params = list(params)
    if not params:
        return losses.new_zeros((losses.shape[0], 0))
    sources = [parameter_source(p) for p in params]
    leaves = list({id(b): b for b, _ in sources}.values())
    index = {id(b): i for i, b in enumerate(leaves)}
    rows = []
    for t in range(losses.shape[0]):
        grads = torch.autograd.grad(losses[t], leaves, retain_graph=True, allow_unused=True)
        parts = [p.new_zeros(p.numel()) if grads[index[id(b)]] is None else cut(grads[index[id(b)]], region).reshape(-1)
                 for p, (b, region) in zip(params, sources)]
        rows.append(widen(torch.cat(parts)))
    return torch.stack(rows)


class LoopSharedGradients:
    """The per-task gradients of the shared parameters as a dense (T, P) matrix, with the
    interface of :class:`polytask.gradients.SharedGradients`."""

    def __init__(self, params: Sequence[torch.Tensor], jacobian: torch.Tensor) -> None:
        self.params = list(params)
        self._jacobian = jacobian
        self.gramian = jacobian @ jacobian.T

    def jacobian(self) -> torch.Tensor:
        return self._jacobian

    def apply(self, weights: torch.Tensor) -> None:
        """Accumulate ``J^T w`` into the shared parameters' ``.grad``."""
        self.apply_vector(weights.to(self._jacobian) @ self._jacobian)

    def apply_vector(self, vector: torch.Tensor) -> None:
        accumulate_flat_gradient(self.params, vector)  # type: ignore[arg-type]


def loop_shared_gradients(losses: torch.Tensor, shared_params: Sequence[torch.Tensor],
                          task_params: Sequence[Sequence[torch.Tensor]]) -> LoopSharedGradients:
    """Exact mode on any graph; each task's own parameters receive their own loss gradient."""
    info = LoopSharedGradients(shared_params, loop_jacobian(losses, shared_params))
    accumulate_own_task_gradients(losses, task_params)
    return info


def loop_representation(losses: torch.Tensor, z: torch.Tensor, task_params: Sequence[Sequence[torch.Tensor]]) -> RepresentationGradients:
    """Representation mode on any graph: ``dL_t/dz`` task by task (dense); each task's own
    parameters receive their own loss gradient."""
    rows = []
    for t in range(losses.shape[0]):
        (g,) = torch.autograd.grad(losses[t], [z], retain_graph=True, allow_unused=True)
        rows.append(torch.zeros_like(z) if g is None else g)
    accumulate_own_task_gradients(losses, task_params)
    return RepresentationGradients(z, dense=torch.stack(rows))
