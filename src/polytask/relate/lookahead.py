"""The update a real optimizer would make from a given gradient, without making it.

TAG's look-ahead (Fifty et al. 2021) needs ``theta_s'`` = the shared parameters after one step
of the training optimizer on one task's gradient alone. The rule is the optimizer's own: we
build a throw-away instance of the same optimizer class over clones of the shared parameters,
with the same hyper-parameters (each clone in the group of its original) and a deep copy of
its current state (SGD's momentum buffer; Adam's moments and step count...), set the clones'
gradients, and call ``step()``. The real parameters and optimizer state are never touched, so
training is unchanged. Any ``torch.optim.Optimizer`` works this way (SGD with or without
momentum or Nesterov, Adam, AdamW, ...); weight decay is applied as the optimizer applies it.

For optimizers whose rule acts element by element (SGD, Adam, AdamW, RMSprop, Adagrad),
:func:`lookahead_parameters_batched` makes the T look-ahead steps of T tasks in one call: each
clone gets a leading task dimension (T, *shape), its state is broadcast along it, and one
``step()`` updates all T copies independently.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.errors import PolytaskError


def _clone_state(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    return copy.deepcopy(value)


#: Optimizers whose update of an entry depends only on that entry's gradient and state.
ELEMENTWISE: tuple[type, ...] = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad)


def _shadow(optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter], clones: list[torch.Tensor],
            expand: int | None) -> torch.optim.Optimizer:
    """An optimizer of the same class over ``clones`` with copies of the groups and state."""
    group_of: dict[int, int] = {}
    for g, group in enumerate(optimizer.param_groups):
        for p in group["params"]:
            group_of[id(p)] = g
    groups: dict[int, list[torch.Tensor]] = {}
    for p, c in zip(params, clones):
        if id(p) not in group_of:
            raise PolytaskError("a shared parameter is not updated by the optimizer; cannot look ahead")
        groups.setdefault(group_of[id(p)], []).append(c)
    param_groups = [
        {**{k: _clone_state(v) for k, v in optimizer.param_groups[g].items() if k != "params"}, "params": members}
        for g, members in groups.items()
    ]
    shadow = type(optimizer)(param_groups)
    for p, c in zip(params, clones):
        if p in optimizer.state:
            state: dict[str, Any] = {}
            for k, v in optimizer.state[p].items():
                if expand is not None and isinstance(v, torch.Tensor) and v.shape == p.shape and v.ndim > 0:
                    state[k] = v.detach().unsqueeze(0).expand(expand, *p.shape).clone()
                else:
                    state[k] = _clone_state(v)
            shadow.state[c] = state
    return shadow


def lookahead_parameters_batched(
    optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """For ``grads[k]`` of shape (T, *params[k].shape): the T look-ahead values of every
    parameter, each (T, *shape), row ``i`` being one step on gradient row ``i``. Requires an
    element-wise optimizer (:data:`ELEMENTWISE`); other classes fall back to T single steps."""
    n = int(grads[0].shape[0]) if grads else 0
    if not isinstance(optimizer, ELEMENTWISE):
        rows = [lookahead_parameters(optimizer, params, [g[i] for g in grads]) for i in range(n)]
        return [torch.stack([r[k] for r in rows]) for k in range(len(params))]
    clones = []
    for p, g in zip(params, grads):
        c = p.detach().unsqueeze(0).expand(n, *p.shape).clone().requires_grad_(True)
        c.grad = g.detach().reshape(n, *p.shape).to(p.dtype).clone()
        clones.append(c)
    _shadow(optimizer, params, clones, expand=n).step()
    return [c.detach() for c in clones]


def lookahead_parameters(
    optimizer: torch.optim.Optimizer, params: Sequence[nn.Parameter], grads: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """``params`` after one ``optimizer`` step with gradients ``grads`` (detached new tensors).

    Each parameter must be one the optimizer updates.
    """
    clones: list[torch.Tensor] = []
    for p, grad in zip(params, grads):
        c = p.detach().clone().requires_grad_(True)
        c.grad = grad.detach().reshape(p.shape).to(p.dtype).clone()
        clones.append(c)
    _shadow(optimizer, params, clones, expand=None).step()
    return [c.detach() for c in clones]
