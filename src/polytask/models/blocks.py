"""The built-in layers the architectures are made of.

- the input: a feature count ``input_dim`` (tables, ``x`` of shape ``(n, p)``) or an
  ``input_shape`` (``(p,)`` or images ``(C, H, W)``);
- encoders: an MLP for tables; for images conv blocks (:mod:`polytask.models.conv`), global
  average pooling, then the MLP. Experts, towers and columns are all such encoders, so every
  architecture takes the same ``trunk`` widths (the widths of *one* expert / tower / column) and
  ``conv_channels``;
- task heads of configurable depth (``head_hidden``), and which parameters are whose.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polytask.errors import PolytaskError
from polytask.models.conv import GlobalAveragePool, check_image_shape, conv_blocks
from polytask.models.heads import PerTaskHeads
from polytask.models.layers import head, mlp
from polytask.models.options import DEFAULT_CONV_CHANNELS


def input_size(x: torch.Tensor) -> int | tuple[int, ...]:
    """What :func:`polytask.models.build_network` takes for inputs shaped like ``x``: the feature
    count for ``(n, p)``, the per-row shape (e.g. ``(C, H, W)``) otherwise."""
    shape = tuple(int(v) for v in x.shape[1:])
    return shape[0] if len(shape) == 1 else shape


def resolve_input_shape(input_dim: int | None, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """``(p,)`` for tables or ``(C, H, W)`` for images, from whichever of the two was given."""
    if input_shape is not None:
        shape = tuple(int(v) for v in input_shape)
        if len(shape) == 1:
            if shape[0] < 1:
                raise PolytaskError(f"input_dim must be positive, got {shape[0]}")
            return shape
        return check_image_shape(shape)
    if input_dim is None:
        raise PolytaskError("give input_dim (tables) or input_shape (images)")
    if int(input_dim) < 1:
        raise PolytaskError(f"input_dim must be positive, got {input_dim}")
    return (int(input_dim),)


def encoder(
    input_shape: Sequence[int],
    widths: Sequence[int],
    conv_channels: Sequence[int] = DEFAULT_CONV_CHANNELS,
    activation: str = "relu",
    dropout: float = 0.0,
    norm: str = "none",
) -> tuple[nn.Sequential, int]:
    """One expert / tower / column and its output width: an MLP on ``(n, p)``, or for images
    ``conv blocks -> global average pooling -> MLP``."""
    blocks, out_dim = encoder_blocks(input_shape, widths, conv_channels, activation, dropout, norm)
    return nn.Sequential(*blocks), out_dim


def encoder_blocks(
    input_shape: Sequence[int],
    widths: Sequence[int],
    conv_channels: Sequence[int] = DEFAULT_CONV_CHANNELS,
    activation: str = "relu",
    dropout: float = 0.0,
    norm: str = "none",
) -> tuple[list[nn.Module], int]:
    """The same encoder cut into its layers (cross-stitch units and MTAN attention sit between
    them). For images the pooling joins the first dense layer, or the last conv block when there
    is no dense layer, so every block's output is a feature map or a vector."""
    shape = tuple(int(v) for v in input_shape)
    blocks: list[nn.Module] = []
    if len(shape) == 1:
        d = shape[0]
        for w in widths:
            blocks.append(mlp(d, [w], activation, dropout, norm))
            d = int(w)
        return blocks, d
    convs = conv_blocks(shape, conv_channels, activation, norm)
    d = int(conv_channels[-1]) if len(conv_channels) else shape[0]
    blocks.extend(convs)
    for i, w in enumerate(widths):
        layer = mlp(d, [w], activation, dropout, norm)
        blocks.append(nn.Sequential(GlobalAveragePool(), *layer) if i == 0 else layer)
        d = int(w)
    if not len(widths):
        if blocks:
            blocks[-1] = nn.Sequential(*blocks[-1], GlobalAveragePool())
        else:
            blocks.append(nn.Sequential(GlobalAveragePool()))
    return blocks, d


def task_heads(
    output_dims: dict[str, int], rep_dim: int, head_hidden: Sequence[int], activation: str, dropout: float
) -> PerTaskHeads:
    """One head module per task: ``head_hidden`` hidden layers, then a linear output layer."""
    return PerTaskHeads({t: head(rep_dim, int(d), head_hidden, activation, dropout) for t, d in output_dims.items()}, output_dims)


def last_linear_parameters(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    """The parameters of the last Linear / Conv2d layer inside each of ``modules`` (of a user
    module with neither: its last two parameter tensors)."""
    out: list[nn.Parameter] = []
    for m in modules:
        layers = [layer for layer in m.modules() if isinstance(layer, (nn.Linear, nn.Conv2d))]
        out.extend(layers[-1].parameters() if layers else list(m.parameters())[-2:])
    return out


def unique_parameters(groups: Sequence[nn.Module | Sequence[nn.Parameter]]) -> list[nn.Parameter]:
    """Parameters of the given modules / lists, each once, in order."""
    seen: set[int] = set()
    out: list[nn.Parameter] = []
    for g in groups:
        params = g.parameters() if isinstance(g, nn.Module) else g
        for p in params:
            if id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


