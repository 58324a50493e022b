"""Cross-stitch networks (Misra, Shrivastava, Gupta and Hebert 2016, "Cross-stitch networks for
multi-task learning", CVPR).

Every task has its own column of layers; after each layer ``l`` a cross-stitch unit replaces the
T column activations by learned linear combinations of them,

    h~_t^l = sum_s alpha^l_{ts} h_s^l,        h_t^{l+1} = f^{l+1}(h~_t^l; phi_t^{l+1}),

with one T x T matrix ``alpha^l`` per layer, initialised to ``alpha_self`` on the diagonal and
``(1 - alpha_self) / (T - 1)`` off it (the paper's (alpha_S, alpha_D) initialisation; 0.9 by
default). Columns are MLPs for tables and conv blocks (+ pooling + MLP layers) for images; the
units sit after every block. Heads read their own column: ``y_t = g_t(h~_t^L)``.

Balancing: all columns and cross-stitch units are shared (every task's output depends on every
column through the units); the heads are task-specific. The shared representation is the stack
of final stitched column outputs ``z = [h~_1^L, ..., h~_T^L]``, shape ``(n, T, k)``.

Your own modules: ``head_module`` builds each task's head. A user trunk is refused: the units
sit between the columns' layers, so the columns are built layer by layer (``trunk`` widths,
``conv_channels``) and a module given whole has no layers to stitch between.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.models.blocks import encoder_blocks, last_linear_parameters
from polytask.models.network import BlockNetwork
from polytask.models.options import LayerOptions, float_option


class CrossStitch(BlockNetwork):
    """T columns joined after every layer by learned T x T cross-stitch units."""

    arch = "cross_stitch"
    representation = "stacked final stitched column outputs (n, T, k)"
    refuses = {"trunk_module": "cross-stitch units mix the columns after every layer, so the columns are built "
                               "layer by layer from trunk widths and conv_channels",
               "expert_module": "cross-stitch has no experts"}

    def __init__(
        self,
        input_dim: int | None = None,
        output_dims: dict[str, int] | None = None,
        layers: LayerOptions | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        alpha_self: float = 0.9,
        **layer_options: Any,
    ) -> None:
        output_dims = dict(output_dims or {})
        super().__init__(list(output_dims))
        alpha_self = float_option(alpha_self, "alpha_self", 0.0, 1.0)
        self._setup(input_dim, output_dims, input_shape, layers, layer_options, alpha_self=alpha_self)
        n_tasks = len(output_dims)
        columns = []
        rep_dim = 0
        for _ in range(n_tasks):
            blocks, rep_dim = encoder_blocks(self.input_shape, self.trunk_widths, self.conv_channels, self.activation,
                                             self.dropout, self.norm)
            columns.append(nn.ModuleList(blocks))
        self.columns = nn.ModuleList(columns)
        n_layers = len(columns[0])
        off = (1.0 - alpha_self) / (n_tasks - 1) if n_tasks > 1 else 0.0
        init = torch.full((n_tasks, n_tasks), off) + torch.eye(n_tasks) * (alpha_self - off if n_tasks > 1 else 1.0)
        self.stitch = nn.ParameterList([nn.Parameter(init.clone()) for _ in range(n_layers)])
        self.rep_dim = rep_dim
        self.heads = self.make_heads(rep_dim)
        self._finish()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        n_tasks = len(self.task_names)
        hs = torch.stack([x] * n_tasks, dim=1)  # (n, T, *features)
        for layer, alpha in enumerate(self.stitch):
            hs = torch.stack([self.columns[t][layer](hs[:, t]) for t in range(n_tasks)], dim=1)
            hs = torch.einsum("ts,ns...->nt...", alpha, hs)
        return hs

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: self.heads[t](z[:, i]) for i, t in enumerate(self.task_names)}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.columns.parameters()) + list(self.stitch.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())

    def last_shared_parameters(self) -> list[nn.Parameter]:
        last = last_linear_parameters([column[-1] for column in self.columns if len(column)])
        return last + ([self.stitch[-1]] if len(self.stitch) else [])
