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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


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


class Balancer(ABC):
    """Turns a loss vector into gradients. Subclasses state their formula and paper."""

    #: Registry name.
    name: ClassVar[str] = ""
    #: Gradient information a method needs: "losses", "gradients" or "representation".
    requires: ClassVar[str] = "losses"
    #: Gradient modes the method can run in (the ``mode`` option); empty for loss weighting.
    modes: ClassVar[tuple[str, ...]] = ()

    def setup(self, task_names: list[str]) -> None:
        """Called once by the trainer before the first step (allocate per-task state here)."""
        self.task_names = list(task_names)

    @abstractmethod
    def backward(self, ctx: StepContext) -> torch.Tensor:
        """Accumulate gradients into the parameters; return the (T,) weights applied."""

    def parameters(self) -> list[nn.Parameter]:
        """Learnable parameters of the method itself (the trainer optimizes them too)."""
        return []

    def state_dict(self) -> dict[str, Any]:
        """Explicit state, saved in checkpoints (tensors or JSON-able values)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def options(self) -> dict[str, Any]:
        """The options the method was built with (recorded in the model directory)."""
        return {}


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
        return w.detach()
