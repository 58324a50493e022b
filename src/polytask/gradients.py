"""Per-task gradient information: the Jacobian of the loss vector with respect to parameters.

``J[t] = d L_t / d theta`` (flattened over ``params``), computed with one batched
vector-Jacobian product (``is_grads_batched``): the rows of the identity are pushed back through
the graph together rather than in T separate backward passes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def per_task_gradients(
    losses: torch.Tensor, params: Sequence[nn.Parameter] | Sequence[torch.Tensor], retain_graph: bool = True
) -> torch.Tensor:
    """The (T, P) Jacobian of ``losses`` (T,) with respect to ``params`` (P entries in all).

    A parameter that a loss does not reach contributes zeros.
    """
    params = list(params)
    n_tasks = losses.shape[0]
    if not params:
        return losses.new_zeros((n_tasks, 0))
    eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(
        losses, params, grad_outputs=eye, retain_graph=retain_graph, allow_unused=True, is_grads_batched=True
    )
    return torch.cat(
        [(g if g is not None else torch.zeros((n_tasks, *p.shape), dtype=losses.dtype, device=losses.device)).reshape(n_tasks, -1)
         for g, p in zip(grads, params)],
        dim=1,
    )


def accumulate_flat_gradient(params: Sequence[nn.Parameter], vector: torch.Tensor) -> None:
    """Add the flat ``vector`` (P,) into the ``.grad`` of ``params``, in order."""
    offset = 0
    for p in params:
        n = p.numel()
        piece = vector[offset : offset + n].view_as(p).to(p.dtype)
        if p.grad is None:
            p.grad = piece.clone()
        else:
            p.grad.add_(piece)
        offset += n
    if offset != vector.numel():
        raise ValueError(f"gradient vector has {vector.numel()} entries for {offset} parameters")
