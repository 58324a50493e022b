"""The benchmark's problems: a network, tasks and one seeded batch.

Two regimes, so that a gradient engine is judged where parameters dominate and where
activations dominate:

- ``mlp``: a trunk-dominated MLP (``256 -> 512 -> 512`` by default, ReLU) with one linear
  regression head per task. Nearly all parameters are shared (394k shared, 513 per head), so the
  per-task Jacobian of the shared parameters is large. The issue's example size
  ``512 -> 1024 -> 1024`` (1.6M shared) is one option away (``--mlp-widths 512,1024,1024``); the
  default is smaller so that every method, both modes and both peers fit a 15-minute run on a
  shared 2-core machine.
- ``conv``: a small convolutional trunk (three 3x3 convolutions, global average pooling and a
  linear layer) on ``C x H x W`` images, with linear heads. Few shared parameters, but most
  compute is in the activations.

Both are :class:`~polytask.models.hps.HardSharing` networks (the conv trunk is passed as
``custom_trunk`` and reshapes the flat input into images), so they satisfy
:class:`~polytask.models.base.MultiTaskNetwork` exactly as a user's network would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.models.hps import HardSharing
from polytask.tasks import Task

NETS = ("mlp", "conv")


@dataclass(frozen=True)
class ProblemSize:
    """Sizes of the benchmark networks and batch.

    Attributes:
        batch: rows per step.
        mlp_input: input width of the MLP; mlp_trunk: its hidden widths.
        image: (channels, height, width) of the conv net's inputs; conv_channels: channels of
            its three convolutions; conv_rep: width of its representation.
    """

    batch: int = 32
    mlp_input: int = 256
    mlp_trunk: tuple[int, ...] = (512, 512)
    image: tuple[int, int, int] = (3, 16, 16)
    conv_channels: tuple[int, int, int] = (8, 16, 32)
    conv_rep: int = 64

    def describe(self, net: str) -> str:
        if net == "mlp":
            widths = "-".join(str(w) for w in (self.mlp_input, *self.mlp_trunk))
            return f"MLP {widths} (ReLU), linear heads, batch {self.batch}"
        c, h, w = self.image
        ch = "-".join(str(k) for k in self.conv_channels)
        return f"conv {ch} channels (3x3, strides 1-2-2) + avg pool + linear {self.conv_rep}, linear heads, {c}x{h}x{w} images, batch {self.batch}"


#: The sizes the full benchmark uses, and a tiny set for ``--quick`` and the tests.
FULL_SIZE = ProblemSize()
QUICK_SIZE = ProblemSize(batch=8, mlp_input=16, mlp_trunk=(32, 32), image=(3, 8, 8), conv_channels=(4, 8, 8), conv_rep=16)


class ConvTrunk(nn.Module):
    """``x (n, C*H*W) -> images -> conv3x3 -> ReLU -> conv3x3/2 -> ReLU -> conv3x3/2 -> ReLU ->
    global average pool -> linear -> ReLU`` giving ``z (n, rep)``."""

    def __init__(self, image: Sequence[int], channels: Sequence[int], rep: int) -> None:
        super().__init__()
        c, h, w = (int(v) for v in image)
        c1, c2, c3 = (int(v) for v in channels)
        self.image = (c, h, w)
        self.features = nn.Sequential(
            nn.Conv2d(c, c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(c3, int(rep)), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x.reshape(x.shape[0], *self.image))


def task_list(n_tasks: int) -> list[Task]:
    """``n_tasks`` regression tasks named ``t0, t1, ...``."""
    if n_tasks < 1:
        raise PolytaskError(f"the benchmark needs at least one task, got {n_tasks}")
    return [Task(name=f"t{i}", kind="regression", columns=(f"t{i}",)) for i in range(n_tasks)]


def build_network(net: str, n_tasks: int, size: ProblemSize, seed: int = 0) -> HardSharing:
    """The ``net`` network (``mlp`` or ``conv``) for ``n_tasks`` scalar regression tasks."""
    torch.manual_seed(seed)
    outputs = {t.name: 1 for t in task_list(n_tasks)}
    if net == "mlp":
        return HardSharing(size.mlp_input, outputs, trunk=size.mlp_trunk)
    if net == "conv":
        trunk = ConvTrunk(size.image, size.conv_channels, size.conv_rep)
        c, h, w = size.image
        return HardSharing(c * h * w, outputs, custom_trunk=trunk)
    raise PolytaskError(f"unknown benchmark network '{net}' (choose from {', '.join(NETS)})")


def make_batch(net: str, n_tasks: int, size: ProblemSize, seed: int = 0) -> TaskTensors:
    """One seeded batch: Gaussian inputs, targets from a random linear map of the inputs plus
    noise (so tasks partly agree and partly conflict), every label observed."""
    gen = torch.Generator().manual_seed(seed)
    if net == "mlp":
        width = size.mlp_input
    else:
        c, h, w = size.image
        width = c * h * w
    x = torch.randn(size.batch, width, generator=gen)
    mix = torch.randn(width, n_tasks, generator=gen) / width**0.5
    y = x @ mix + 0.5 * torch.randn(size.batch, n_tasks, generator=gen)
    targets = {f"t{i}": y[:, i : i + 1].contiguous() for i in range(n_tasks)}
    masks = {k: torch.ones_like(v, dtype=torch.bool) for k, v in targets.items()}
    return TaskTensors(x, targets, masks)
