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
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polytask.models.blocks import DEFAULT_CONV_CHANNELS, BlockNetwork, int_option, last_linear_parameters, widths_option
from polytask.models.gates import SoftmaxGate


class MultiGateMixture(BlockNetwork):
    """Shared experts, one softmax gate and one tower per task."""

    arch = "mmoe"
    representation = "stacked expert outputs (n, E, k)"

    def __init__(
        self,
        input_dim: int | None = None,
        output_dims: dict[str, int] | None = None,
        trunk: Sequence[int] = (64, 64),
        head_hidden: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        input_shape: Sequence[int] | None = None,
        conv_channels: Sequence[int] = DEFAULT_CONV_CHANNELS,
        n_experts: int = 4,
        gate_hidden: Sequence[int] = (),
    ) -> None:
        output_dims = dict(output_dims or {})
        super().__init__(list(output_dims))
        self.n_experts = int_option(n_experts, "n_experts")
        self.gate_hidden = widths_option(gate_hidden, "gate_hidden")
        self._setup(input_dim, output_dims, input_shape, trunk, head_hidden, activation, dropout, norm,
                    conv_channels, **self._specific_config())
        experts = []
        rep_dim = 0
        for _ in range(self.n_experts):
            expert, rep_dim = self.make_encoder()
            experts.append(expert)
        self.experts = nn.ModuleList(experts)
        self.rep_dim = rep_dim
        self.gates = nn.ModuleDict({t: self.make_gate() for t in output_dims})
        self.heads = self.make_heads(rep_dim)

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
