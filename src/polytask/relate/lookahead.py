"""The update a real optimizer would make from a given gradient, without making it.

TAG's look-ahead (Fifty et al. 2021) needs ``theta_s'`` = the shared parameters after one step
of the training optimizer on one task's gradient alone. The rule is the optimizer's own: we
build a throw-away instance of the same optimizer class over clones of the shared parameters,
with the same hyper-parameters (each clone in the group of its original) and a deep copy of
its current state (SGD's momentum buffer; Adam's moments and step count...), set the clones'
gradients, and call ``step()``. The real parameters and optimizer state are never touched, so
training is unchanged. Any ``torch.optim.Optimizer`` works this way (SGD with or without
momentum or Nesterov, Adam, AdamW, ...); weight decay is applied as the optimizer applies it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from polytask.errors import PolytaskError


def _clone_state(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return copy.deepcopy(value)


def lookahead_parameters(
    optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """``params`` after one ``optimizer`` step with gradients ``grads`` (detached new tensors).

    Each parameter must be one the optimizer updates.
    """
    group_of: dict[int, int] = {}
    for g, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            group_of[id(p)] = g
    clones: list[torch.Tensor] = []
    groups: dict[int, list[torch.Tensor]] = {}
    for p, grad in zip(params, grads):
        if id(p) not in group_of:
            raise PolytaskError("a shared parameter is not updated by the optimizer; cannot look ahead")
        c = p.detach().clone().requires_grad_(True)
        c.grad = grad.detach().reshape(p.shape).to(p.dtype).clone()
        clones.append(c)
        groups.setdefault(group_of[id(p)], []).append(c)
    param_groups = [
        {**{k: _clone_state(v) for k, v in optimizer.param_groups[g].items() if k != "params"}, "params": members}
        for g, members in groups.items()
    ]
    shadow = type(optimizer)(param_groups)
    for p, c in zip(params, clones):
        if p in optimizer.state:
            shadow.state[c] = {k: _clone_state(v) for k, v in optimizer.state[p].items()}
    shadow.step()
    return [c.detach() for c in clones]
