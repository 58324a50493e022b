"""What the architectures beyond hard sharing have in common.

- the input: a feature count ``input_dim`` (tables, ``x`` of shape ``(n, p)``) or an
  ``input_shape`` (``(p,)`` or images ``(C, H, W)``);
- encoders: an MLP for tables; for images conv blocks (:mod:`polytask.models.conv`), global
  average pooling, then the MLP. Experts, towers and columns are all such encoders, so every
  architecture takes the same ``trunk`` widths (the widths of *one* expert / tower / column) and
  ``conv_channels``;
- task heads of configurable depth (``head_hidden``) and the option checks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.errors import PolytaskError
from polytask.models.base import MultiTaskNetwork
from polytask.models.conv import GlobalAveragePool, check_image_shape, conv_blocks
from polytask.models.layers import head, mlp

DEFAULT_CONV_CHANNELS = (16, 32)


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


def widths_option(value: Any, name: str) -> tuple[int, ...]:
    """Layer widths from a list, an int or a string such as ``"64,32"`` (CLI ``KEY=VALUE``)."""
    if isinstance(value, str):
        text = value.strip().strip("[]()")
        items: list[Any] = [v for v in text.split(",") if v.strip()] if text else []
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        items = [value]
    elif isinstance(value, Sequence):
        items = list(value)
    else:
        raise PolytaskError(f"option '{name}' expects widths such as 64,32, got {value!r}")
    try:
        widths = tuple(int(str(v).strip()) for v in items)
    except ValueError:
        raise PolytaskError(f"option '{name}' expects widths such as 64,32, got {value!r}") from None
    if any(w < 1 for w in widths):
        raise PolytaskError(f"option '{name}' widths must be positive, got {value!r}")
    return widths


def int_option(value: Any, name: str, minimum: int = 1) -> int:
    """A whole number ``>= minimum`` or a PolytaskError naming the option."""
    try:
        out = int(value)
        if isinstance(value, bool) or out != float(value):
            raise ValueError
    except (TypeError, ValueError):
        raise PolytaskError(f"option '{name}' expects a whole number, got {value!r}") from None
    if out < minimum:
        raise PolytaskError(f"option '{name}' must be >= {minimum}, got {out}")
    return out


def float_option(value: Any, name: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number in ``[low, high]`` or a PolytaskError naming the option."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise PolytaskError(f"option '{name}' expects a number, got {value!r}") from None
    if not math.isfinite(out) or not low <= out <= high:
        raise PolytaskError(f"option '{name}' must be in [{low}, {high}], got {value!r}")
    return out


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
) -> nn.ModuleDict:
    """One head per task: ``head_hidden`` hidden layers, then a linear output layer."""
    return nn.ModuleDict({t: head(rep_dim, int(d), head_hidden, activation, dropout) for t, d in output_dims.items()})


def last_linear_parameters(modules: Sequence[nn.Module]) -> list[nn.Parameter]:
    """The parameters of the last Linear / Conv2d layer inside each of ``modules``."""
    out: list[nn.Parameter] = []
    for m in modules:
        layers = [layer for layer in m.modules() if isinstance(layer, (nn.Linear, nn.Conv2d))]
        if layers:
            out.extend(layers[-1].parameters())
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


class BlockNetwork(MultiTaskNetwork):
    """Shared set-up of the architectures in this package: input shape, common options, heads
    and a JSON-able config (``input_shape``, ``conv_channels`` and each architecture's own
    options next to the usual ``trunk``, ``head_hidden``, ``activation``, ``dropout``, ``norm``)."""

    def _setup(
        self,
        input_dim: int | None,
        output_dims: dict[str, int],
        input_shape: Sequence[int] | None,
        trunk: Any,
        head_hidden: Any,
        activation: str,
        dropout: float,
        norm: str,
        conv_channels: Any,
        **specific: Any,
    ) -> None:
        if not output_dims:
            raise PolytaskError(f"architecture '{self.arch}' needs at least one task")
        self.input_shape = resolve_input_shape(input_dim, input_shape)
        self.is_image = len(self.input_shape) == 3
        self.trunk_widths = widths_option(trunk, "trunk")
        self.head_hidden = widths_option(head_hidden, "head_hidden")
        self.conv_channels = widths_option(conv_channels, "conv_channels")
        self.activation, self.dropout, self.norm = activation, float(dropout), norm
        self.output_dims = {k: int(v) for k, v in output_dims.items()}
        self._config: dict[str, Any] = {
            "input_dim": self.input_shape[0] if not self.is_image else None,
            "output_dims": dict(self.output_dims),
            "input_shape": list(self.input_shape),
            "trunk": list(self.trunk_widths),
            "head_hidden": list(self.head_hidden),
            "activation": activation,
            "dropout": float(dropout),
            "norm": norm,
            "conv_channels": list(self.conv_channels),
            **specific,
        }

    def make_encoder(self, input_shape: Sequence[int] | None = None) -> tuple[nn.Sequential, int]:
        """One expert / tower on ``input_shape`` (default: the network's input)."""
        return encoder(
            input_shape or self.input_shape, self.trunk_widths, self.conv_channels, self.activation, self.dropout, self.norm
        )

    def make_heads(self, rep_dim: int) -> nn.ModuleDict:
        return task_heads(self.output_dims, rep_dim, self.head_hidden, self.activation, self.dropout)

    @property
    def flat_input_dim(self) -> int:
        """Number of input values per row (what gates read, flattened)."""
        return int(math.prod(self.input_shape))

    def config(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._config.items()}
