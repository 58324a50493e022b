"""Soft parameter sharing (Duong et al. 2015, "Low resource dependency parsing: cross-lingual
parameter sharing in a neural network parser", ACL; the family surveyed by Ruder 2017).

Every task has its own tower ``h_t = f(x; phi_t)`` (same layer shapes for all tasks) and head
``y_t = g_t(h_t; theta_t)``. Nothing is tied exactly; instead the joint loss gets the penalty

    Omega = lambda * sum_{t < s} sum_l ||phi_t^l - phi_s^l||_2^2,

the squared L2 distance between corresponding layers (weights and biases) of every pair of
towers. ``lambda = 0`` is T independent networks (STL inside one model); as ``lambda`` grows
the towers are pulled towards one shared tower (hard sharing).

Balancing: the towers together are the "shared" group (``encode`` runs them all and the penalty
couples them), the heads are task-specific, and the shared representation is the stack of tower
outputs ``z = [h_1, ..., h_T]`` of shape ``(n, T, k)``. Task t's loss reaches only tower t, so the
per-task gradients on the shared group are orthogonal: gradient-aggregation methods see no
conflict except through the penalty, which the trainer adds after the balancer.

Your own modules: ``trunk_module`` builds each task's tower (a builder called once per task, or
a module deep-copied per task, so the copies start equal); the penalty pairs the towers'
parameters in order, so every tower must have the same parameter shapes. ``head_module``
builds each task's head. Experts do not apply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.errors import PolytaskError
from polytask.models.task_modules import TaskModules
from polytask.models.blocks import last_linear_parameters
from polytask.models.network import HEADS, BlockNetwork
from polytask.models.options import LayerOptions, float_option
from polytask.models.user_modules import distinct


class SoftSharing(BlockNetwork):
    """One tower per task, tied by an L2 penalty on the distance between corresponding layers."""

    arch = "soft"
    representation = "stacked tower outputs (n, T, k)"
    accepts = {"trunk_module": "each task's tower (a builder called per task, or a module copied per task)",
               "head_module": HEADS}
    refuses = {"expert_module": "soft sharing has no experts (pass trunk_module for its towers)"}

    def __init__(
        self,
        input_dim: int | None = None,
        output_dims: dict[str, int] | None = None,
        layers: LayerOptions | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        penalty_weight: float = 1e-2,
        **layer_options: Any,
    ) -> None:
        output_dims = dict(output_dims or {})
        super().__init__(list(output_dims))
        self.penalty_weight = float_option(penalty_weight, "penalty_weight", low=0.0)
        self._setup(input_dim, output_dims, input_shape, layers, layer_options, penalty_weight=self.penalty_weight)
        towers, widths = {}, set()
        for t in output_dims:
            towers[t], width = self.make_tower()
            widths.add(width)
        distinct(list(towers.values()), "trunk")
        self.towers = TaskModules(towers)
        self._check_towers(widths)
        self.rep_dim = widths.pop()
        self.heads = self.make_heads(self.rep_dim)
        self._finish()

    def _check_towers(self, widths: set[int]) -> None:
        """Towers the penalty can compare: one output width, the same parameter shapes."""
        shapes = {t: [tuple(p.shape) for p in tower.parameters()] for t, tower in self.towers.items()}
        first = self.task_names[0]
        for t in self.task_names[1:]:
            if shapes[t] != shapes[first] or len(widths) > 1:
                raise PolytaskError(f"soft sharing needs towers of one shape: task '{t}''s tower differs from task '{first}''s")

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.towers[t](x) for t in self.task_names], dim=1)

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: self.heads[t](z[:, i]) for i, t in enumerate(self.task_names)}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.towers.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_linear_parameters([self.towers[t] for t in self.task_names])

    def tower_distance(self) -> torch.Tensor:
        """``sum_{t<s} sum_l ||phi_t^l - phi_s^l||^2`` (the penalty before its weight)."""
        params = [list(self.towers[t].parameters()) for t in self.task_names]
        total = params[0][0].new_zeros(()) if params and params[0] else torch.zeros(())
        for i in range(len(params)):
            for j in range(i + 1, len(params)):
                for a, b in zip(params[i], params[j]):
                    total = total + (a - b).pow(2).sum()
        return total

    def penalty(self) -> torch.Tensor | None:
        if self.penalty_weight == 0 or len(self.task_names) < 2:
            return None
        return self.penalty_weight * self.tower_distance()
