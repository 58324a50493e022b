"""Hard parameter sharing (Caruana 1993, 1997): one shared trunk, one head per task.

``z = trunk(x; phi)``, ``y_t = head_t(z; theta_t)``. The trunk is an MLP (configurable widths,
activation, dropout, normalization); for images (``input_shape = (C, H, W)``) a small CNN
(``conv_channels``, see :mod:`polytask.models.conv`), global average pooling, then the MLP.

Your own modules: ``trunk_module`` is any ``nn.Module`` mapping ``(n, *input_shape)`` to
``(n, k)`` (used as is), or a builder called with the input size that returns one; ``k`` is read
by a dry forward pass. ``head_module(task, k, out_dim)`` builds each task's head. Nothing else
is assumed of either, so the shared / task split stays exact: the trunk's parameters are shared,
each head's are its task's. Experts do not apply (there are none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.losses import OutputLayout
from polytask.models.layers import mlp
from polytask.models.network import HEADS, BlockNetwork
from polytask.models.options import LayerOptions
from polytask.models.user_modules import build_module, output_width


class HardSharing(BlockNetwork):
    """Shared trunk + task heads."""

    arch = "hps"
    representation = "trunk output (n, k)"
    accepts = {"trunk_module": "the shared trunk: a module used as is, or a builder called with the input size",
               "head_module": HEADS}
    refuses = {"expert_module": "hard sharing has no experts (pass trunk_module for its trunk)"}

    def __init__(
        self,
        input_dim: int | None = None,
        output_dims: dict[str, int] | None = None,
        layers: LayerOptions | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        **layer_options: Any,
    ) -> None:
        output_dims = dict(output_dims or {})
        super().__init__(list(output_dims))
        self._setup(input_dim, output_dims, input_shape, layers, layer_options)
        lay = self.layers
        if lay.trunk_module is not None:
            self.trunk: nn.Module = build_module(lay.trunk_module, self.input_shape, "trunk")
            rep_dim = output_width(self.trunk, self.input_shape, "trunk module")
        elif self.is_image:
            self.trunk, rep_dim = self.make_encoder()
        else:  # one flat Sequential, as model directories of tables have always stored it
            self.trunk = mlp(self.input_shape[0], lay.trunk, lay.activation, lay.dropout, lay.norm)
            rep_dim = lay.trunk[-1] if lay.trunk else self.input_shape[0]
        self.rep_dim = int(rep_dim)
        self.heads = self.make_heads(self.rep_dim, shared_input=True)
        self._finish()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.heads.outputs(z)

    def decode_packed(self, z: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, OutputLayout]:
        return self.heads(z), self.heads.layout

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return self.heads.task_parameters(task)
