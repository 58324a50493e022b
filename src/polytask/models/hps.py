"""Hard parameter sharing (Caruana 1993, 1997): one shared trunk, one head per task.

``z = trunk(x; phi)``, ``y_t = head_t(z; theta_t)``. The trunk is an MLP (configurable widths,
activation, dropout, normalization) or any user ``nn.Module`` mapping ``(n, p)`` to ``(n, k)``.
For images (``input_shape = (C, H, W)``) the trunk is a small CNN (``conv_channels``, see
:mod:`polytask.models.conv`), global average pooling, then the MLP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.models.base import MultiTaskNetwork
from polytask.models.blocks import DEFAULT_CONV_CHANNELS, encoder, resolve_input_shape
from polytask.models.layers import head, mlp


class HardSharing(MultiTaskNetwork):
    """Shared trunk + task heads."""

    arch = "hps"
    representation = "trunk output (n, k)"

    def __init__(
        self,
        input_dim: int | None,
        output_dims: dict[str, int],
        trunk: Sequence[int] = (64, 64),
        head_hidden: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        custom_trunk: nn.Module | None = None,
        input_shape: Sequence[int] | None = None,
        conv_channels: Sequence[int] = DEFAULT_CONV_CHANNELS,
    ) -> None:
        super().__init__(list(output_dims))
        shape = resolve_input_shape(input_dim, input_shape)
        input_dim = shape[0]
        self._config: dict[str, Any] = {
            "input_dim": int(input_dim),
            "output_dims": {k: int(v) for k, v in output_dims.items()},
            "trunk": [int(w) for w in trunk],
            "head_hidden": [int(w) for w in head_hidden],
            "activation": activation,
            "dropout": float(dropout),
            "norm": norm,
        }
        if len(shape) == 3:  # images: recorded only then, so tabular configs stay as they were
            self._config.update(input_dim=None, input_shape=list(shape), conv_channels=[int(c) for c in conv_channels])
        if custom_trunk is not None:
            self.trunk: nn.Module = custom_trunk
            with torch.no_grad():
                was_training = custom_trunk.training
                custom_trunk.eval()
                rep_dim = int(custom_trunk(torch.zeros(2, *shape)).shape[-1])
                custom_trunk.train(was_training)
            self._config["trunk"] = "custom"
        elif len(shape) == 3:
            self.trunk, rep_dim = encoder(shape, trunk, conv_channels, activation, dropout, norm)
        else:
            self.trunk = mlp(input_dim, trunk, activation, dropout, norm)
            rep_dim = int(trunk[-1]) if len(trunk) else int(input_dim)
        self.rep_dim = rep_dim
        self.heads = nn.ModuleDict(
            {t: head(rep_dim, d, head_hidden, activation, dropout) for t, d in output_dims.items()}
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def decode(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: h(z) for t, h in self.heads.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return list(self.heads[task].parameters())

    def config(self) -> dict[str, Any]:
        return dict(self._config)
