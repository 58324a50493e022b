"""The balancer interface: how a vector of task losses becomes parameter gradients.

At each training step the trainer computes the loss vector ``L = (alpha_1 L_1, ..., alpha_T L_T)``
(task weights, and any weight schedule, already applied) and hands a :class:`StepContext` to the
balancer, whose :meth:`Balancer.backward` fills the parameters' ``.grad`` and returns the
per-task weights it applied (for logging). The trainer never looks at which balancer it runs.

Two families fit this one interface:

- *loss weighting* (:class:`LossWeighting`): weights ``w`` from the loss values and their
  history, then one backward pass of ``sum_t w_t L_t``;
- *gradient aggregation*: methods that need per-task gradients of the shared parameters (or of
  the shared representation ``z``) take them from the context's parameters and representation.

A balancer is an ``nn.Module``: its learnable quantities are ``nn.Parameter`` (the trainer
optimizes ``balancer.parameters()`` with the network), ``.to(device)`` moves them, and
``state_dict()`` holds them together with the method's history (the attributes named in
:attr:`Remembers.state_fields`, saved as the module's extra state: tensors, numbers, None and
seeded streams).

Absent tasks: ``StepContext.present`` says which tasks have a label in the batch. An absent
task's loss is 0 with a zero gradient; that is not a measurement, so every method leaves it out
of its step and its history, as its docstring states. Without a mask every task is present.
"""

from __future__ import annotations

import copy
import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from polytask.errors import PolytaskError


class Reducer:
    """Collective operations across the processes of a data-parallel run, for the methods that
    need global quantities; this base class is the single process (every operation the identity).

    Under data parallelism each process holds a shard of the global batch, and ``ctx.losses``
    carries the *global* loss values with gradients that reach only this process's rows: a
    local backward pass gives this process's *contribution* to a gradient, and the trainer adds
    the contributions of the parameters' ``.grad`` over processes after the balancer. A method
    that needs a global per-task quantity (a Jacobian, a Gramian, a gradient norm) adds it with
    :meth:`sum`; one that computes a global update vector itself contributes :meth:`share` of it.
    """

    #: Number of processes and this process's index.
    world_size: int = 1
    rank: int = 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of ``tensor`` over processes (the same on every process)."""
        return tensor

    def gather(self, tensor: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, slice]:
        """Every process's ``tensor`` concatenated along ``dim`` in rank order (sizes along
        ``dim`` may differ), and the slice of that dimension that is this process's own."""
        return tensor, slice(0, tensor.shape[dim])

    def share(self, tensor: torch.Tensor) -> torch.Tensor:
        """This process's contribution to a global update known on every process (its sum over
        processes is ``tensor``)."""
        return tensor if self.world_size == 1 else tensor / self.world_size


#: The single-process reducer.
LOCAL = Reducer()


@dataclass
class StepContext:
    """What a balancer may use at one step.

    Attributes:
        losses: the (T,) weighted loss vector, attached to the autograd graph.
        task_names: task names, in the order of ``losses``.
        shared_params: parameters every task depends on.
        task_params: each task's own parameters.
        representation: the shared representation ``z`` (attached to the graph), or None.
        last_shared_params: the last shared layer (GradNorm's reference layer).
        step: global step index (0-based); epoch: epoch index (0-based).
        reducer: collective operations across data-parallel processes (:class:`Reducer`).
        grad_scale: the factor ``S`` that gradients flowing back from the outputs carry (fp16
            gradient scaling; 1 otherwise): methods that read gradients divide by it.
        compiled: the network runs compiled, its autograd graph opaque: gradient information
            comes from one plain backward pass per task.
        present: (T,) bool, the tasks with at least one label in the batch (and a positive
            weight); None: every task is present. Under data parallelism a task is present
            when it has a label on any process (the mask is the same on every process).
    """

    losses: torch.Tensor
    task_names: list[str]
    shared_params: list[nn.Parameter]
    task_params: dict[str, list[nn.Parameter]]
    representation: torch.Tensor | None = None
    last_shared_params: list[nn.Parameter] = field(default_factory=list)
    step: int = 0
    epoch: int = 0
    reducer: Reducer = LOCAL
    grad_scale: float = 1.0
    compiled: bool = False
    present: torch.Tensor | None = None

    def presence(self) -> torch.Tensor:
        """The (T,) bool presence mask on the CPU (all True without a mask)."""
        return presence_mask(self.present, int(self.losses.shape[0]))


def presence_mask(present: torch.Tensor | None, n_tasks: int) -> torch.Tensor:
    """``present`` as a (T,) CPU bool tensor; all True when None."""
    if present is None:
        return torch.ones(n_tasks, dtype=torch.bool)
    mask = torch.as_tensor(present).detach().to("cpu", torch.bool).reshape(-1)
    if mask.shape[0] != n_tasks:
        raise PolytaskError(f"the presence mask has {mask.shape[0]} entries for {n_tasks} tasks")
    return mask


class Balancer(nn.Module, ABC):
    """Turns a loss vector into gradients. Subclasses state their formula and paper."""

    #: Registry name.
    name: ClassVar[str] = ""
    #: Gradient information a method needs: "losses", "gradients" or "representation".
    requires: ClassVar[str] = "losses"
    #: Gradient modes the method can run in (the ``mode`` option); empty for loss weighting.
    modes: ClassVar[tuple[str, ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.task_names: list[str] = []

    def setup(self, task_names: list[str]) -> None:
        """Called once by the trainer before the first step (allocate per-task state here)."""
        self.task_names = list(task_names)

    @abstractmethod
    def backward(self, ctx: StepContext) -> torch.Tensor:
        """Accumulate gradients into the parameters; return the (T,) weights applied."""

    def options(self) -> dict[str, Any]:
        """The constructor options the method was built with (the attributes of the same name)."""
        params = inspect.signature(type(self).__init__).parameters
        skip = (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        return {k: getattr(self, k) for k, p in params.items() if k != "self" and p.kind not in skip and hasattr(self, k)}


def _export(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple)):
        return [_export(v) for v in value]
    if hasattr(value, "state_dict"):  # a seeded stream, an optimizer
        return copy.deepcopy(value.state_dict())
    return value


def _import(current: Any, saved: Any) -> Any:
    if not isinstance(current, torch.Tensor) and hasattr(current, "load_state_dict"):
        current.load_state_dict(copy.deepcopy(saved))
        return current
    if isinstance(saved, torch.Tensor):
        return saved.detach().clone()
    if isinstance(saved, (list, tuple)):
        return [_import(None, v) for v in saved]
    return saved


class Remembers:
    """Mixin for balancers with history: the attributes named in ``state_fields`` are the
    module's extra state (so ``state_dict``/``load_state_dict`` carry them; tensors are copied,
    objects with their own ``state_dict`` such as seeded streams are saved through it)."""

    state_fields: ClassVar[tuple[str, ...]] = ()

    def get_extra_state(self) -> dict[str, Any]:
        return {k: _export(getattr(self, k)) for k in self.state_fields}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        missing = [k for k in self.state_fields if k not in state]
        if missing:
            raise PolytaskError(f"balancer '{getattr(self, 'name', '?')}': saved state has no '{missing[0]}'")
        for k in self.state_fields:
            setattr(self, k, _import(getattr(self, k, None), state[k]))


class LossWeighting(Balancer):
    """A method that only reweights losses: ``grad = d/dtheta sum_t w_t L_t`` with ``w`` from
    :meth:`weights`, computed on detached loss values."""

    @abstractmethod
    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """(T,) weights from the detached loss vector."""

    def objective(self, ctx: StepContext, w: torch.Tensor) -> torch.Tensor:
        """The scalar to differentiate; methods whose objective is not linear in L override it."""
        return (w * ctx.losses).sum()

    def backward(self, ctx: StepContext) -> torch.Tensor:
        w = self.weights(ctx.losses.detach(), ctx)
        self.objective(ctx, w).backward()
        return w.detach() if w.requires_grad else w


class LearnedLossScales(LossWeighting):
    """Loss weighting with one learnable scalar ``s_t`` per task and the objective

        L = sum_t present_t ( a(s_t) L_t + r(s_t) ),

    the weights ``w_t = a(s_t)`` (:meth:`weights`). Its gradient is written out: the network's
    is one pass of ``sum_t w_t L_t`` over the present tasks, and ``dL/ds_t = a'(s_t) L_t + r'(s_t)``
    (:meth:`scale_gradient`) is added to ``s.grad`` for the present tasks (an absent task's ``s_t``
    gets nothing from that step), as autograd would give them, with fewer operations."""

    @abstractmethod
    def scales(self) -> nn.Parameter:
        """The learnable ``s`` (T,)."""

    @abstractmethod
    def scale_gradient(self, s: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
        """``dL/ds_t`` (T,) at detached ``s`` and loss values."""

    def backward(self, ctx: StepContext) -> torch.Tensor:
        values, s = ctx.losses.detach(), self.scales()
        w = self.weights(values, ctx)
        grad = self.scale_gradient(s.detach().to(values), values)
        if ctx.present is None:
            (w * ctx.losses).sum().backward()
        else:
            present = ctx.presence().to(values.device)
            (torch.where(present, w, torch.zeros_like(w)) * ctx.losses).sum().backward()
            grad = torch.where(present, grad, torch.zeros_like(grad))
        s.grad = grad.to(s) if s.grad is None else s.grad + grad.to(s)
        return w
