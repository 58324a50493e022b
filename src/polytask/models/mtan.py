"""Multi-task attention network, MTAN (Liu, Johns and Davison 2019, "End-to-end multi-task
learning with attention", CVPR).

A shared trunk of blocks ``p^j = B^j(p^{j-1})`` (conv blocks for images, then pooling and dense
layers; dense layers for tables) is read by one soft-attention branch per task. At block ``j``
task t computes a mask from the shared features and its own features of the block below and
applies it element-wise to the shared features:

    a_t^1 = sigma(A_t^1(p^1)),                               g_t^1 = a_t^1 * p^1,
    a_t^j = sigma(A_t^j([p^j ; F_t^j(g_t^{j-1})])),           g_t^j = a_t^j * p^j,
    y_t   = head_t(g_t^J),

with ``A_t^j`` two 1x1 convolutions (dense layers on vectors), ReLU then sigmoid, and ``F_t^j`` a
3x3 conv block with pooling (a dense layer on vectors) that brings ``g_t^{j-1}`` to the shape of
``p^j``. Masks in ``[0, 1]`` let each task select the shared features it needs.

Deviations from the paper, stated: (1) the paper's ``F^j`` is shared by the tasks; here each
task has its own, so that all shared computation comes before all task computation and
``encode`` / ``decode`` split cleanly; (2) our blocks have one convolution each, so the
paper's two feature maps per block (the block's first layer output ``u^j`` for the mask input and
its last ``p^j`` to be masked) coincide.

Balancing: the trunk is shared; each task's attention modules, ``F_t^j`` and head are its own.
The shared representation is the concatenation of every block's flattened output,
``z = [vec(p^1), ..., vec(p^J)]``, shape ``(n, sum_j |p^j|)``.

Your own modules: ``head_module`` builds each task's head (on ``g_t^J``, a vector). A user trunk
is refused: every task's attention reads every block of the trunk, so the trunk is built block
by block (``trunk`` widths, ``conv_channels``) and a module given whole has no blocks to attend to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.errors import PolytaskError
from polytask.models.task_modules import TaskModules
from polytask.models.blocks import encoder_blocks, last_linear_parameters
from polytask.models.network import BlockNetwork
from polytask.models.options import LayerOptions
from polytask.models.conv import GlobalAveragePool, conv_block
from polytask.models.layers import ACTIVATIONS


def _attention(shape: tuple[int, ...], in_channels: int, activation: str) -> nn.Sequential:
    """``sigma(W2 act(W1 u))`` with 1x1 convolutions on feature maps, dense layers on vectors."""
    c = shape[0]
    if len(shape) == 3:
        return nn.Sequential(nn.Conv2d(in_channels, c, 1), ACTIVATIONS[activation](), nn.Conv2d(c, c, 1), nn.Sigmoid())
    return nn.Sequential(nn.Linear(in_channels, c), ACTIVATIONS[activation](), nn.Linear(c, c), nn.Sigmoid())


def _transition(src: tuple[int, ...], dst: tuple[int, ...], activation: str, norm: str) -> nn.Sequential:
    """``F``: task features of shape ``src`` to the shape ``dst`` of the next shared block."""
    if len(src) == 3 and len(dst) == 3:
        return conv_block(src[0], dst[0], activation, norm if norm == "batch" else "none", pool=dst[1] < src[1])
    if len(src) == 3:
        return nn.Sequential(GlobalAveragePool(), nn.Linear(src[0], dst[0]), ACTIVATIONS[activation]())
    return nn.Sequential(nn.Linear(src[0], dst[0]), ACTIVATIONS[activation]())


class MultiTaskAttention(BlockNetwork):
    """Shared trunk + per-task attention masks on every block's output."""

    arch = "mtan"
    representation = "every shared block's flattened output, concatenated (n, D)"

    refuses = {"trunk_module": "every task's attention reads every block of the trunk, so the trunk is built "
                               "block by block from trunk widths and conv_channels",
               "expert_module": "MTAN has no experts"}

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
        blocks, rep_dim = encoder_blocks(self.input_shape, self.trunk_widths, self.conv_channels, self.activation,
                                         self.dropout, self.norm)
        if not blocks:
            raise PolytaskError("architecture 'mtan' needs at least one shared layer (trunk widths or conv_channels)")
        self.blocks = nn.ModuleList(blocks)
        self.block_shapes = self._block_shapes()
        self.attention = TaskModules()
        self.transitions = TaskModules()
        for t in self.task_names:
            self.attention[t], self.transitions[t] = self._branch(self.block_shapes)
        self.rep_dim = rep_dim
        self.heads = self.make_heads(rep_dim)
        self._finish()

    def _block_shapes(self) -> list[tuple[int, ...]]:
        """Each shared block's output shape per row (a dry forward pass)."""
        with torch.no_grad():
            was = self.blocks.training
            self.blocks.eval()
            h = torch.zeros((1, *self.input_shape))
            shapes = []
            for block in self.blocks:
                h = block(h)
                shapes.append(tuple(int(v) for v in h.shape[1:]))
            self.blocks.train(was)
        return shapes

    def _branch(self, shapes: list[tuple[int, ...]]) -> tuple[nn.ModuleList, nn.ModuleList]:
        """One task's attention modules ``A_t^j`` and transitions ``F_t^j``."""
        att, trans = [], []
        for j, shape in enumerate(shapes):
            extra = shapes[j][0] if j > 0 else 0
            att.append(_attention(shape, shape[0] + extra, self.activation))
            if j > 0:
                trans.append(_transition(shapes[j - 1], shape, self.activation, self.norm))
        return nn.ModuleList(att), nn.ModuleList(trans)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        feats, h = [], x
        for block in self.blocks:
            h = block(h)
            feats.append(h.flatten(1))
        return torch.cat(feats, dim=1)

    def _split(self, z: torch.Tensor) -> list[torch.Tensor]:
        sizes = [math.prod(s) for s in self.block_shapes]
        return [piece.reshape(z.shape[0], *shape) for piece, shape in zip(torch.split(z, sizes, dim=1), self.block_shapes)]

    def masks(self, x: torch.Tensor) -> dict[str, list[torch.Tensor]]:
        """Each task's attention masks, one per block (values in [0, 1])."""
        return self._attend(self._split(self.encode(x)))[1]

    def _attend(self, feats: list[torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, list[torch.Tensor]]]:
        outs, masks = {}, {}
        for t in self.task_names:
            g, ms = None, []
            for j, p in enumerate(feats):
                u = p if g is None else torch.cat([p, self.transitions[t][j - 1](g)], dim=1)
                a = self.attention[t][j](u)
                g = a * p
                ms.append(a)
            outs[t], masks[t] = g, ms
        return outs, masks

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats, _ = self._attend(self._split(z))
        return {t: self.heads[t](g) for t, g in feats.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.blocks.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return (list(self.attention[task].parameters()) + list(self.transitions[task].parameters())
                + list(self.heads[task].parameters()))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_linear_parameters([self.blocks[-1]]) or super().last_shared_parameters()
