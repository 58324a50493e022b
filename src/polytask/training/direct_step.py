"""The optimizer's step and gradient reset without ``torch.optim``'s per-call bookkeeping.

On a small network the arithmetic of a fused Adam step is a few microseconds, but
``Optimizer.step`` around it is not: a profiler span, the step hooks, ``_init_group`` walking
every parameter's state, and regrouping all tensors by device and dtype, on every call. On the
basic benchmark network (a 64-64 trunk, batch 256) that bookkeeping and ``zero_grad`` were about
a fifth of a training step. :class:`DirectStep` does the same update straight from lists it
builds once:

    step_i += 1;  torch._fused_adam_(params, grads, m, v, v_max, steps, lr, beta1, beta2, ...)

per parameter group, which is the call ``torch.optim.Adam(fused=True)`` ends in, on the same
state tensors (so ``optimizer.state_dict()``, schedulers changing ``lr`` and checkpoints see
exactly what torch's own step would have left; the tests compare them bit for bit).

It takes this path only where it is that call: an optimizer of type exactly ``Adam`` or
``AdamW`` (torch's, or :mod:`polytask.training.optim`'s, which are torch's built another way) with ``fused=True`` in every group, no ``capturable``/``differentiable``, float
(not complex) parameters of one device and dtype, every parameter with a dense gradient, no
step hooks (global or the optimizer's). On the first step it makes the state as torch's first
step would (:meth:`DirectStep._start_state`). Anything else (a parameter without a gradient, an
optimizer the user passed, SGD, a state loaded since) goes through ``optimizer.step()``
unchanged, and the lists are built again when they may be stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.optimizer import _device_dtype_check_for_fused, _global_optimizer_post_hooks, _global_optimizer_pre_hooks

from polytask.training import optim

_KINDS = (torch.optim.Adam, torch.optim.AdamW, optim.Adam, optim.AdamW)  # optim's: torch's, built another way


@dataclass
class _Group:
    """One parameter group's tensors, in the order the fused kernel takes them."""

    options: dict[str, Any]
    params: list[torch.Tensor]
    exp_avgs: list[torch.Tensor]
    exp_avg_sqs: list[torch.Tensor]
    max_exp_avg_sqs: list[torch.Tensor]
    steps: list[torch.Tensor]


class DirectStep:
    """``step()`` and ``zero_grad()`` for ``optimizer`` (see the module docstring)."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self._eligible = type(optimizer) in _KINDS and all(_fused_options(g) for g in optimizer.param_groups)
        self._all_params = [p for g in optimizer.param_groups for p in g["params"]]
        self._groups: list[_Group] | None = None
        self._built_for: tuple[Any, Any, int] | None = None

    def zero_grad(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)``: every parameter's ``.grad`` set to None."""
        if len(self._all_params) != sum(len(g["params"]) for g in self.optimizer.param_groups):
            self._all_params = [p for g in self.optimizer.param_groups for p in g["params"]]
        for p in self._all_params:
            p.grad = None

    def step(self) -> None:
        """One optimizer step: the fused kernel directly where that is exactly torch's step."""
        groups = self._ready()
        if groups is None and self._allowed() and self._start_state():
            groups = self._groups = self._build()
            # what a learning-rate scheduler's wrapper of optimizer.step() records on a call
            # (else its first step warns that it ran before the optimizer's)
            self.optimizer._opt_called = True  # type: ignore[attr-defined]
        if groups is None:
            self.optimizer.step()
            self._groups = self._build()
            return
        grads = [[p.grad for p in group.params] for group in groups]
        if any(g is None or g.is_sparse for gs in grads for g in gs):
            self.optimizer.step()
            self._groups = None
            return
        with torch.no_grad():
            for group, gs in zip(groups, grads):
                _fused_update(group, gs)  # type: ignore[arg-type]

    # -- when the direct path applies ----------------------------------------------------------
    def _allowed(self) -> bool:
        """An eligible optimizer (module docstring) and no step hooks anywhere."""
        opt = self.optimizer
        return (self._eligible and not (_global_optimizer_pre_hooks or _global_optimizer_post_hooks)
                and not (opt._optimizer_step_pre_hooks or opt._optimizer_step_post_hooks))

    def _ready(self) -> list[_Group] | None:
        opt = self.optimizer
        if not self._allowed():
            return None
        built = self._built_for
        if built is None or built[0] is not opt.state or built[1] is not opt.param_groups or built[2] != len(opt.param_groups):
            self._groups = None
        if self._groups is not None and any(group.options is not g or not _fused_options(g)
                                            for group, g in zip(self._groups, opt.param_groups)):
            self._groups = None
        return self._groups

    def _start_state(self) -> bool:
        """The state ``Adam(fused=True)`` makes at its first step, made here for each parameter
        that has none (a zero ``step`` as a float32 scalar on the parameter's device, zero
        moments like the parameter), when every parameter has a dense gradient (else False and
        nothing is made: torch's step decides). Torch's first step would also import
        ``torch._dynamo`` (its ``step`` wrapper does, about 2.5 s of CPU once per process)."""
        opt = self.optimizer
        params = [(p, g) for g in opt.param_groups for p in g["params"]]
        if any(p.grad is None or p.grad.is_sparse or p.is_complex() for p, _ in params):
            return False
        for p, group in params:
            state = opt.state[p]
            if len(state) == 0:
                _device_dtype_check_for_fused(p)
                state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if group["amsgrad"]:
                    state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return True

    def _build(self) -> list[_Group] | None:
        """The lists of every group from the optimizer's state, or None where some parameter
        has no state yet or the tensors are not of one device and dtype."""
        opt = self.optimizer
        if not self._eligible:
            return None
        out: list[_Group] = []
        kinds: set[tuple[torch.device, torch.dtype]] = set()
        for g in opt.param_groups:
            if not _fused_options(g):  # e.g. a group added since with other options
                return None
            states = [opt.state.get(p) for p in g["params"]]
            if any(not s or "step" not in s for s in states) or any(p.is_complex() for p in g["params"]):
                return None
            kinds.update((p.device, p.dtype) for p in g["params"])
            amsgrad = bool(g["amsgrad"])
            out.append(_Group(g, list(g["params"]), [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
                              [s["max_exp_avg_sq"] for s in states] if amsgrad else [], [s["step"] for s in states]))
        if len(kinds) != 1:
            return None
        self._built_for = (opt.state, opt.param_groups, len(opt.param_groups))
        return out


def _fused_options(group: dict[str, Any]) -> bool:
    """Whether ``group`` asks for exactly the fused kernel on plain float options."""
    return (bool(group.get("fused")) and not group.get("capturable") and not group.get("differentiable")
            and not isinstance(group["lr"], torch.Tensor)
            and not any(isinstance(b, torch.Tensor) for b in group["betas"]))


def _fused_update(group: _Group, grads: list[torch.Tensor]) -> None:
    """The update ``Adam(fused=True)`` makes for one group: steps advanced, then the kernel."""
    o = group.options
    beta1, beta2 = o["betas"]
    kernel = torch._fused_adamw_ if o.get("decoupled_weight_decay") else torch._fused_adam_
    torch._foreach_add_(group.steps, 1)
    kernel(group.params, grads, group.exp_avgs, group.exp_avg_sqs, group.max_exp_avg_sqs, group.steps,
           amsgrad=bool(o["amsgrad"]), lr=float(o["lr"]), beta1=float(beta1), beta2=float(beta2),
           weight_decay=float(o["weight_decay"]), eps=float(o["eps"]), maximize=bool(o["maximize"]),
           grad_scale=None, found_inf=None)
