"""A small convolutional trunk for image inputs ``(n, C, H, W)``.

One block is ``Conv2d(3x3, padding 1) -> [BatchNorm2d] -> activation -> MaxPool2d(2)`` (the
pooling is skipped once the feature map is 1 pixel wide). After the blocks, global average
pooling turns the last feature map into a vector of ``channels[-1]`` numbers, so an image
encoder ends in the same ``(n, k)`` shape an MLP trunk gives and every task head, gate and
expert built for tables works unchanged on images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polytask.errors import PolytaskError
from polytask.models.layers import ACTIVATIONS

CONV_NORMS = ("none", "batch")


def conv_block(in_channels: int, out_channels: int, activation: str = "relu", norm: str = "none", pool: bool = True) -> nn.Sequential:
    """``Conv2d(3x3) -> [BatchNorm2d] -> activation -> [MaxPool2d(2)]``: keeps H, W, then halves them."""
    if activation not in ACTIVATIONS:
        raise PolytaskError(f"unknown activation '{activation}' (choose from {', '.join(ACTIVATIONS)})")
    if int(out_channels) < 1:
        raise PolytaskError(f"convolution channels must be positive, got {out_channels}")
    layers: list[nn.Module] = [nn.Conv2d(int(in_channels), int(out_channels), kernel_size=3, padding=1)]
    if norm == "batch":
        layers.append(nn.BatchNorm2d(int(out_channels)))
    layers.append(ACTIVATIONS[activation]())
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class GlobalAveragePool(nn.Module):
    """``(n, C, H, W) -> (n, C)``: the mean over the spatial positions."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def conv_blocks(
    input_shape: Sequence[int],
    channels: Sequence[int],
    activation: str = "relu",
    norm: str = "none",
) -> list[nn.Sequential]:
    """The conv blocks of a trunk for images of ``input_shape = (C, H, W)``, one per entry of
    ``channels``. Pooling halves the resolution while it is at least 2 pixels."""
    if norm not in CONV_NORMS:
        norm = "none"  # layer normalization has no convolutional counterpart here
    c, h, w = (int(v) for v in input_shape)
    blocks = []
    for out in channels:
        pool = min(h, w) >= 2
        blocks.append(conv_block(c, int(out), activation, norm, pool))
        c = int(out)
        if pool:
            h, w = h // 2, w // 2
    return blocks


def check_image_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """``(C, H, W)`` as ints, or a PolytaskError naming the shape."""
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise PolytaskError(f"image input shape must be (channels, height, width), got {tuple(input_shape)}")
    return shape  # type: ignore[return-value]
