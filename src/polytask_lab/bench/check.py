"""The benchmark checks itself: do the peers compute the same shared update as polytask?

On one batch and the same network weights, each implementation of a method takes the
trainer's context and runs its ``backward`` once (no optimizer step); the gradients it leaves in
the shared parameters are compared with polytask's, as ``||g_peer - g_ours|| / ||g_ours||``.
A method with randomness (PCGrad's task order, GradDrop's masks, ...) or whose torchjd
definition differs from ours can legitimately disagree; the report shows the figure either way.
"""

from __future__ import annotations

import torch

from polytask.data.tensors import TaskTensors
from polytask.training import Trainer


def shared_gradient(trainer: Trainer, batch: TaskTensors) -> torch.Tensor:
    """The flat gradient of the shared parameters after one ``balancer.backward`` on ``batch``
    (starting from zero gradients; parameters are not updated)."""
    trainer.optimizer.zero_grad(set_to_none=True)
    packed = trainer.pack(batch)
    ctx, _ = trainer.packed_context(packed.x, packed.y, packed.m, 0)
    trainer.balancer.backward(ctx)
    shared = trainer.network.shared_parameters()
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in shared])
    trainer.optimizer.zero_grad(set_to_none=True)
    return flat.detach().clone()


def relative_difference(a: torch.Tensor, reference: torch.Tensor) -> float:
    """``||a - reference|| / ||reference||`` (the plain norm when the reference is zero)."""
    scale = float(reference.norm())
    diff = float((a - reference).norm())
    return diff / scale if scale > 0 else diff
