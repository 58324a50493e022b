"""Single-task learning (STL), the baseline every MTL claim is made against.

T independent networks, each with the trunk and head shapes of the MTL network, sharing no
parameter. Trained jointly on ``sum_t L_t``, each network's gradient is exactly that of its own
task, so this is T independent trainings run in one loop (same batches, same schedule, per-task
early stopping).

Your own modules: each task's trunk comes from ``trunk_module`` (a builder called once per task,
or a module deep-copied per task, so the copies start equal), or else from ``expert_module``
(the STL baseline of the mixtures of experts: one expert per task, as the built-in baseline
uses one expert's widths); ``head_module`` builds each task's head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from polytask.models.task_modules import TaskModules
from polytask.models.hps import HardSharing
from polytask.models.network import HEADS, BlockNetwork
from polytask.models.options import LayerOptions
from polytask.models.user_modules import build_module


class SingleTaskNetworks(BlockNetwork):
    """One :class:`HardSharing` network per task; no shared parameters."""

    arch = "stl"
    representation = "the input itself (nothing is shared)"
    independent_tasks = True
    accepts = {"trunk_module": "each task's trunk (a builder called per task, or a module copied per task)",
               "expert_module": "each task's trunk when trunk_module is not given (one expert per task)",
               "head_module": HEADS}

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
        own = self.layers.trunk_module if self.layers.trunk_module is not None else self.layers.expert_module
        nets = {}
        for t, d in self.output_dims.items():
            trunk = None if own is None else build_module(own, self.input_shape, "trunk", copy_instance=True)
            task_layers = replace(self.layers, trunk_module=trunk, expert_module=None)
            nets[t] = HardSharing(None, {t: d}, task_layers, input_shape=self.input_shape)
        self.nets = TaskModules(nets)
        self._finish()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x  # nothing is shared: the "shared representation" is the input itself

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: net(z)[t] for t, net in self.nets.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return []

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.nets[task].parameters())


def matched_stl_trunk(
    input_dim: int | Sequence[int],
    output_dims: dict[str, int],
    target_params: int,
    trunk: Sequence[int],
    head_hidden: Sequence[int] = (),
    conv_channels: Sequence[int] | None = None,
) -> list[int]:
    """Trunk widths, scaled by one common factor, that bring STL's total parameter count
    closest to ``target_params`` (MTL's total). ``input_dim`` may be an image shape ``(C, H, W)``."""
    shape = (input_dim,) if isinstance(input_dim, int) else tuple(int(v) for v in input_dim)
    image: dict[str, Any] = {"input_shape": shape} if len(shape) == 3 else {}
    if image and conv_channels is not None:  # the conv blocks stay as given; only the MLP widths scale
        image["conv_channels"] = tuple(conv_channels)

    def total(widths: list[int]) -> int:
        net = SingleTaskNetworks(None if image else shape[0], output_dims, trunk=widths, head_hidden=head_hidden, **image)
        return sum(p.numel() for p in net.parameters())

    best, best_gap = list(trunk), abs(total(list(trunk)) - target_params)
    for scale in [s / 20 for s in range(1, 41)]:
        widths = [max(1, round(w * scale)) for w in trunk]
        gap = abs(total(widths) - target_params)
        if gap < best_gap:
            best, best_gap = widths, gap
    return best
