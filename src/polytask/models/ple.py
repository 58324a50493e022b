"""Customized gate control (CGC) and progressive layered extraction (PLE) (Tang, Liu, Zhao and
Gong 2020, "Progressive layered extraction (PLE): a novel multi-task learning (MTL) model for
personalized recommendations", RecSys).

**CGC** (one extraction level): ``E_s`` shared experts and ``E_t`` experts owned by each task;
task t's gate mixes the shared experts and its own,

    y_t = tower_t( sum_e g_t(x)_e f_e(x) ),   e over [shared experts, task-t experts],
    g_t(x) = softmax(W_t x).

**PLE** stacks ``L`` such levels. Every level but the last also has a shared gate over *all*
experts of the level; level ``l`` turns the inputs ``(s, h_1..h_T)`` (all ``x`` at the first
level) into

    h_t' = sum_e g_t(h_t)_e f_e   over [shared experts(s), task-t experts(h_t)],
    s'   = sum_e g_s(s)_e  f_e    over [shared experts(s), all task experts(h_1..h_T)],

so task-specific and shared knowledge are separated progressively. Experts are MLPs of widths
``trunk`` (conv blocks + pooling + MLP on images at the first level); towers are the task heads.

Balancing: ``encode`` computes everything every task depends on, i.e. all levels but the last
plus the last level's shared experts. The shared representation is

    z = [f_1^L(s), ..., f_{E_s}^L(s), h_1, ..., h_T]     shape (n, E_s + T, k)  for L >= 2,
    z = [f_1(x), ..., f_{E_s}(x)]                         shape (n, E_s, k)      for CGC,

and each task's own parameters are its last-level experts, its last-level gate and its tower.
(The task gates of the level below the last feed only their own task, so their gradient comes
from one task even though they count as shared; the lower levels' task experts feed every task
through the shared gates and so are truly shared.)

Your own modules: ``expert_module(input_size)`` builds every expert, shared and task-specific:
at the first level it is called with the input size (``p`` or ``(C, H, W)``), at the levels
above with the experts' width ``k`` of the level below; all experts of a level must give one
width, and the last level's the width of its inputs (``z`` stacks the two). ``head_module`` builds each task's tower. ``trunk_module`` is refused: the experts are
what is shared.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.errors import PolytaskError
from polytask.models.task_modules import TaskModules
from polytask.models.blocks import last_linear_parameters
from polytask.models.gates import SoftmaxGate
from polytask.models.mmoe import EXPERT_MODULES, NO_TRUNK
from polytask.models.network import BlockNetwork
from polytask.models.options import LayerOptions, int_option, widths_option


def mix(weights: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """``sum_e w_e f_e``: weights ``(n, E)``, expert outputs ``(n, E, k)`` -> ``(n, k)``."""
    return (weights.unsqueeze(-1) * experts).sum(dim=1)


class ProgressiveLayeredExtraction(BlockNetwork):
    """PLE: ``n_levels`` extraction levels of shared and task-specific experts with gates."""

    arch = "ple"
    representation = "last-level shared expert outputs and each task's input to its last-level experts (n, E_s + T, k); with n_levels=1 as CGC"

    accepts = EXPERT_MODULES
    refuses = NO_TRUNK

    def __init__(
        self,
        input_dim: int | None = None,
        output_dims: dict[str, int] | None = None,
        layers: LayerOptions | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        n_shared_experts: int = 2,
        n_task_experts: int = 1,
        n_levels: int = 2,
        gate_hidden: Sequence[int] = (),
        **layer_options: Any,
    ) -> None:
        output_dims = dict(output_dims or {})
        super().__init__(list(output_dims))
        # without a shared expert nothing is shared (that is the STL baseline, --stl)
        self.n_shared = int_option(n_shared_experts, "n_shared_experts", minimum=1)
        self.n_task = int_option(n_task_experts, "n_task_experts", minimum=0)
        self.n_levels = int_option(n_levels, "n_levels")
        self.gate_hidden = widths_option(gate_hidden, "gate_hidden")
        self._setup(input_dim, output_dims, input_shape, layers, layer_options, **self._specific_config())
        levels = []
        level_input: tuple[int, ...] = self.input_shape
        for level in range(self.n_levels):
            last = level == self.n_levels - 1
            module, width = self._level(level_input, last)
            if last and level > 0 and width != level_input[0]:
                raise PolytaskError(f"the last level's experts give width {width}, their inputs have {level_input[0]}: "
                                    "PLE stacks the two in its shared representation, so they need one width")
            levels.append(module)
            level_input = (width,)
        self.levels = nn.ModuleList(levels)
        self.rep_dim = level_input[0]
        self.heads = self.make_heads(self.rep_dim)
        self._finish()

    def _level(self, level_input: tuple[int, ...], last: bool) -> tuple[nn.Module, int]:
        """One extraction level on inputs of ``level_input``, and its experts' width."""
        module = nn.Module()
        shared, width = self.make_experts(self.n_shared, level_input)
        module.shared_experts = nn.ModuleList(shared)
        own = {}
        for t in self.task_names:
            experts, task_width = self.make_experts(self.n_task, level_input)
            if experts and task_width != width:
                raise PolytaskError(f"the expert modules give outputs of widths {width} and {task_width}: "
                                    "experts that are mixed need one width")
            own[t] = nn.ModuleList(experts)
        module.task_experts = TaskModules(own)
        in_dim = int(torch.Size(level_input).numel())
        n_gate = self.n_shared + self.n_task
        module.task_gates = TaskModules(
            {t: SoftmaxGate(in_dim, n_gate, self.gate_hidden, self.activation) for t in self.task_names}
        )
        if not last:
            total = self.n_shared + self.n_task * len(self.task_names)
            module.shared_gate = SoftmaxGate(in_dim, total, self.gate_hidden, self.activation)
        return module, width

    def _specific_config(self) -> dict[str, object]:
        return {"n_shared_experts": self.n_shared, "n_task_experts": self.n_task, "n_levels": self.n_levels,
                "gate_hidden": list(self.gate_hidden)}

    @staticmethod
    def _run(experts: nn.ModuleList, x: torch.Tensor) -> list[torch.Tensor]:
        return [expert(x) for expert in experts]

    def _lower_levels(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run every level but the last: the shared input ``s`` and task inputs ``h_t`` of the last."""
        s, hs = x, [x] * len(self.task_names)
        for level in list(self.levels)[:-1]:
            shared_out = self._run(level.shared_experts, s)
            task_out = [self._run(level.task_experts[t], h) for t, h in zip(self.task_names, hs)]
            new_hs = [
                mix(level.task_gates[t](h), torch.stack(shared_out + own, dim=1))
                for t, h, own in zip(self.task_names, hs, task_out)
            ]
            everything = torch.stack(shared_out + [e for own in task_out for e in own], dim=1)
            s, hs = mix(level.shared_gate(s), everything), new_hs
        return s, hs

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        s, hs = self._lower_levels(x)
        last = self.levels[-1]
        shared_out = self._run(last.shared_experts, s)
        return torch.stack(shared_out + (hs if self.n_levels > 1 else []), dim=1)

    def _task_inputs(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        shared = z[:, : self.n_shared]
        if self.n_levels > 1:
            return shared, [z[:, self.n_shared + i] for i in range(len(self.task_names))]
        return shared, [x] * len(self.task_names)

    def gate_weights(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's last-level gate: weights ``(n, E_s + E_t)`` over [shared experts, own experts]."""
        _, hs = self._task_inputs(self.encode(x), x)
        return {t: self.levels[-1].task_gates[t](h) for t, h in zip(self.task_names, hs)}

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        last = self.levels[-1]
        shared, hs = self._task_inputs(z, x)
        out = {}
        for t, h in zip(self.task_names, hs):
            own = self._run(last.task_experts[t], h)
            experts = torch.cat([shared, torch.stack(own, dim=1)], dim=1) if own else shared
            out[t] = self.heads[t](mix(last.task_gates[t](h), experts))
        return out

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.levels[:-1].parameters()) + list(self.levels[-1].shared_experts.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        last = self.levels[-1]
        return list(last.task_experts[task].parameters()) + list(last.task_gates[task].parameters()) + list(
            self.heads[task].parameters()
        )

    def last_shared_parameters(self) -> list[nn.Parameter]:
        last = self.levels[-1]
        return last_linear_parameters(list(last.shared_experts))


class CustomizedGateControl(ProgressiveLayeredExtraction):
    """CGC: PLE with a single extraction level."""

    arch = "cgc"
    representation = "stacked shared expert outputs (n, E_s, k)"

    def __init__(
        self,
        input_dim: int | None = None,
        output_dims: dict[str, int] | None = None,
        layers: LayerOptions | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        n_shared_experts: int = 2,
        n_task_experts: int = 1,
        gate_hidden: Sequence[int] = (),
        **layer_options: Any,
    ) -> None:
        super().__init__(input_dim, output_dims, layers, input_shape=input_shape, n_shared_experts=n_shared_experts,
                         n_task_experts=n_task_experts, n_levels=1, gate_hidden=gate_hidden, **layer_options)

    def _specific_config(self) -> dict[str, object]:
        return {"n_shared_experts": self.n_shared, "n_task_experts": self.n_task, "gate_hidden": list(self.gate_hidden)}
