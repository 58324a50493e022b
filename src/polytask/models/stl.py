"""Single-task learning (STL), the baseline every MTL claim is made against.

T independent networks, each with the trunk and head shapes of the MTL network, sharing no
parameter. Trained jointly on ``sum_t L_t``, each network's gradient is exactly that of its own
task, so this is T independent trainings run in one loop (same batches, same schedule, per-task
early stopping).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.models.base import MultiTaskNetwork
from polytask.models.blocks import DEFAULT_CONV_CHANNELS
from polytask.models.hps import HardSharing


class SingleTaskNetworks(MultiTaskNetwork):
    """One :class:`HardSharing` network per task; no shared parameters."""

    arch = "stl"
    representation = "the input itself (nothing is shared)"

    def __init__(
        self,
        input_dim: int | None,
        output_dims: dict[str, int],
        trunk: Sequence[int] = (64, 64),
        head_hidden: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        input_shape: Sequence[int] | None = None,
        conv_channels: Sequence[int] = DEFAULT_CONV_CHANNELS,
    ) -> None:
        super().__init__(list(output_dims))
        self._config: dict[str, Any] = {
            "input_dim": int(input_dim) if input_dim is not None else None,
            "output_dims": {k: int(v) for k, v in output_dims.items()},
            "trunk": [int(w) for w in trunk],
            "head_hidden": [int(w) for w in head_hidden],
            "activation": activation,
            "dropout": float(dropout),
            "norm": norm,
        }
        image = input_shape is not None and len(input_shape) == 3
        if image:  # recorded only for images, so tabular configs stay as they were
            self._config.update(input_dim=None, input_shape=[int(v) for v in input_shape], conv_channels=[int(c) for c in conv_channels])
        extra: dict[str, Any] = {"input_shape": input_shape, "conv_channels": conv_channels} if image else {}
        self.nets = nn.ModuleDict(
            {
                t: HardSharing(input_dim, {t: d}, trunk, head_hidden, activation, dropout, norm, **extra)
                for t, d in output_dims.items()
            }
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x  # nothing is shared: the "shared representation" is the input itself

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: net(z)[t] for t, net in self.nets.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return []

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.nets[task].parameters())

    def config(self) -> dict[str, Any]:
        return dict(self._config)


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
    dim, image = (None, {"input_shape": shape}) if len(shape) == 3 else (shape[0], {})
    if image and conv_channels is not None:  # the conv blocks stay as given; only the MLP widths scale
        image["conv_channels"] = tuple(conv_channels)

    def total(widths: list[int]) -> int:
        return sum(
            p.numel()
            for p in SingleTaskNetworks(dim, output_dims, widths, head_hidden, **image).parameters()
        )

    best, best_gap = list(trunk), abs(total(list(trunk)) - target_params)
    for scale in [s / 20 for s in range(1, 41)]:
        widths = [max(1, round(w * scale)) for w in trunk]
        gap = abs(total(widths) - target_params)
        if gap < best_gap:
            best, best_gap = widths, gap
    return best
