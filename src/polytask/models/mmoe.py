"""Multi-gate mixture-of-experts, MMoE (Ma, Zhao, Yi, Chen, Hong and Chi 2018, "Modeling task
relationships in multi-task learning with multi-gate mixture-of-experts", KDD).

``E`` shared experts ``f_e(x)`` (MLPs for tables; conv blocks + pooling + MLP for images) and
one gate per task over them,

    g_t(x) = softmax(W_t x),        y_t = tower_t( sum_e g_t(x)_e f_e(x) ),

so each task learns its own mixture of the shared experts: related tasks can use the same
experts, unrelated ones different experts. The tower is the task head (``head_hidden`` hidden
layers); gates are linear by default (``gate_hidden`` adds hidden layers) and read the flattened
input row.

Balancing: the experts are shared; each task's gate and tower are its own. The shared
representation is the stack of expert outputs ``z = [f_1(x), ..., f_E(x)]``, shape ``(n, E, k)``.

Your own modules: ``expert_module(input_size)`` builds each expert (called E times; every
expert must give the same width ``k``, read by a dry forward pass, since they are mixed) and
``head_module`` each task's tower. ``trunk_module`` is refused: there is no single trunk, the
experts are what is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.models.task_modules import TaskModules
from polytask.models.blocks import last_linear_parameters
from polytask.models.gates import SoftmaxGate
from polytask.models.network import HEADS, BlockNetwork
from polytask.models.options import LayerOptions, int_option, widths_option

#: The user modules of the mixtures of experts (MMoE, DSelect-k, CGC, PLE).
EXPERT_MODULES = {"expert_module": "each expert, expert_module(input_size)", "head_module": HEADS}
NO_TRUNK = {"trunk_module": "it has no single trunk, its experts are what is shared (pass expert_module)"}


class MultiGateMixture(BlockNetwork):
    """Shared experts, one softmax gate and one tower per task."""

    arch = "mmoe"
    representation = "stacked expert outputs (n, E, k)"
    accepts = EXPERT_MODULES
    refuses = NO_TRUNK

    def __init__(
        self,
        input_dim: int | None = None,
        output_dims: dict[str, int] | None = None,
        layers: LayerOptions | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        n_experts: int = 4,
        gate_hidden: Sequence[int] = (),
        **layer_options: Any,
    ) -> None:
        output_dims = dict(output_dims or {})
        super().__init__(list(output_dims))
        self.n_experts = int_option(n_experts, "n_experts")
        self.gate_hidden = widths_option(gate_hidden, "gate_hidden")
        self._setup(input_dim, output_dims, input_shape, layers, layer_options, **self._specific_config())
        experts, self.rep_dim = self.make_experts(self.n_experts)
        self.experts = nn.ModuleList(experts)
        self.gates = TaskModules({t: self.make_gate() for t in output_dims})
        self.heads = self.make_heads(self.rep_dim)
        self._finish()

    def _specific_config(self) -> dict[str, object]:
        return {"n_experts": self.n_experts, "gate_hidden": list(self.gate_hidden)}

    def make_gate(self) -> nn.Module:
        return SoftmaxGate(self.flat_input_dim, self.n_experts, self.gate_hidden, self.activation)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([expert(x) for expert in self.experts], dim=1)

    def gate_weights(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's mixture weights over the experts, ``(n, E)`` per task."""
        return {t: self.gates[t](x) for t in self.task_names}

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {}
        for t, g in self.gate_weights(x).items():
            out[t] = self.heads[t]((g.unsqueeze(-1) * z).sum(dim=1))
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.experts.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.gates[task].parameters()) + list(self.heads[task].parameters())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_linear_parameters(list(self.experts))
