"""The contract every multi-task architecture meets.

A network maps inputs ``x`` to one output tensor per task in two stages,
``z = encode(x)`` (the shared representation) and ``{t: y_t} = decode(z, x)``, and declares which
parameters are shared and which belong to each task. Balancers and the gradient engine rely only
on this contract, so every balancer works with every architecture without special cases.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import nn

from polytask.losses import OutputLayout


class MultiTaskNetwork(nn.Module, ABC):
    """Base class of architectures: ``forward(x) = decode(encode(x), x)``."""

    #: Registry name of the architecture (recorded in the model directory).
    arch: str = ""
    #: What ``encode`` returns, in words (the representation that representation-mode balancers
    #: differentiate).
    representation: str = ""
    #: True when no parameter is shared: each task's outputs depend on that task's parameters
    #: alone, so each task may be trained by itself (on the rows that label it) with the same
    #: meaning as the joint run.
    independent_tasks: bool = False

    def __init__(self, task_names: list[str]) -> None:
        super().__init__()
        self.task_names = list(task_names)

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The shared representation ``z`` (what representation-mode balancers differentiate)."""

    @abstractmethod
    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Task outputs (logits or standardized values) from the representation."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.decode(self.encode(x), x)

    def output_layout(self) -> OutputLayout | None:
        """Where each task's outputs are in :meth:`decode_packed` (None: known after a forward)."""
        return None

    def decode_packed(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, OutputLayout]:
        """All task outputs as one (n, H) tensor and its layout. By default the outputs of
        :meth:`decode` side by side; architectures whose heads run together return their packed
        output directly (no copy)."""
        outputs = self.decode(z, x)
        layout = self.output_layout() or OutputLayout.of({t: int(outputs[t].shape[1]) for t in self.task_names})
        parts = [outputs[t] for t in layout.names]
        return (parts[0] if len(parts) == 1 else torch.cat(parts, 1)), layout

    @abstractmethod
    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task's loss depends on (those ``encode`` uses)."""

    @abstractmethod
    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Parameters that belong to ``task`` alone."""

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The last shared layer's parameters (GradNorm measures gradient norms there)."""
        shared = self.shared_parameters()
        return shared[-2:] if len(shared) >= 2 else shared

    def penalty(self) -> torch.Tensor | None:
        """An architecture's own regularizer added to the joint loss (None when it has none)."""
        return None

    @abstractmethod
    def config(self) -> dict[str, Any]:
        """JSON-able keyword arguments that rebuild this network with :meth:`from_config`."""

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "MultiTaskNetwork":
        return cls(**config)

    def parameter_counts(self) -> dict[str, int]:
        """Parameter counts: ``shared``, one entry per task, and ``total``."""
        counts = {"shared": sum(p.numel() for p in self.shared_parameters())}
        for t in self.task_names:
            counts[t] = sum(p.numel() for p in self.task_parameters(t))
        counts["total"] = sum(p.numel() for p in self.parameters())
        return counts
