"""The options every architecture shares, declared once, and the checks of option values.

:class:`LayerOptions` holds what every architecture is built from (layer widths, activation,
dropout, normalization, conv channels) and the modules a PyTorch user may bring instead of the
built-in layers (``trunk_module``, ``head_module``, ``expert_module``; Python only). Each
architecture's constructor takes one ``LayerOptions`` plus its own specific options; the CLI
flags and the scikit-learn parameters are generated from these declarations
(:mod:`polytask.settings`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

from polytask import registry
from polytask.errors import PolytaskError
from polytask.models.names import ACTIVATION_NAMES as ACTIVATIONS
from polytask.models.names import NORMS
from polytask.settings import option

DEFAULT_CONV_CHANNELS = (16, 32)

#: A trunk: a module used as is, or a builder called with the input size (``p`` for rows of
#: ``p`` features, ``(C, H, W)`` for images) that returns one.
TrunkModule = Any  # nn.Module | Callable[[Any], nn.Module]: spelled Any so declaring options needs no torch
#: ``head_module(task_name, in_dim, out_dim) -> nn.Module`` mapping ``(n, in_dim)`` to ``(n, out_dim)``.
HeadBuilder = Callable[[str, int, int], Any]
#: ``expert_module(input_size) -> nn.Module`` mapping rows of that size to ``(n, k)``.
ExpertBuilder = Callable[[Any], Any]

#: The user-module fields, and the word an error message uses for each.
MODULE_FIELDS = {"trunk_module": "trunk", "head_module": "head", "expert_module": "expert"}
#: Older spellings still accepted.
ALIASES = {"custom_trunk": "trunk_module"}


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


def choice_option(value: Any, name: str, choices: Sequence[str]) -> str:
    """One of ``choices`` or a PolytaskError listing them."""
    if value not in choices:
        raise PolytaskError(f"option '{name}' must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


normal_name = registry.normal_name  # option and architecture names compare as the registry does


@dataclass
class LayerOptions:
    """The layers every architecture is built from; see each architecture's docstring for
    which user modules it takes."""

    trunk: tuple[int, ...] = option(
        (64, 64), kind="widths",
        help="Dense layer widths of the shared trunk (hps), or of one expert / tower / column.")
    head_hidden: tuple[int, ...] = option(
        (), kind="widths", help="Hidden layer widths of each task head (none: one linear layer).")
    activation: str = option("relu", choices=tuple(ACTIVATIONS), help="Activation after every hidden layer.")
    dropout: float = option(0.0, help="Dropout after every hidden layer, in [0, 1).")
    norm: str = option("none", choices=NORMS, help="Normalization after every dense layer (conv blocks: batch only).")
    conv_channels: tuple[int, ...] = option(
        DEFAULT_CONV_CHANNELS, kind="widths", help="Channels of the 3x3 conv blocks on image inputs (C, H, W).")
    trunk_module: TrunkModule | None = option(
        None, expose=False,
        help="Your trunk: an nn.Module, or a builder called with the input size (p, or (C, H, W)).")
    head_module: HeadBuilder | None = option(
        None, expose=False, help="Your task heads: head_module(task_name, in_dim, out_dim) -> nn.Module.")
    expert_module: ExpertBuilder | None = option(
        None, expose=False, help="Your experts (mixtures of experts): expert_module(input_size) -> nn.Module.")

    def __post_init__(self) -> None:
        self.trunk = widths_option(self.trunk, "trunk")
        self.head_hidden = widths_option(self.head_hidden, "head_hidden")
        self.conv_channels = widths_option(self.conv_channels, "conv_channels")
        if self.activation not in ACTIVATIONS:
            raise PolytaskError(f"unknown activation '{self.activation}' (choose from {', '.join(ACTIVATIONS)})")
        if self.norm not in NORMS:
            raise PolytaskError(f"unknown normalization '{self.norm}' (choose from {', '.join(NORMS)})")
        dropout = float_option(self.dropout, "dropout")
        if not 0.0 <= dropout < 1.0:
            raise PolytaskError(f"option 'dropout' must be in [0, 1), got {self.dropout!r}")
        self.dropout = dropout
        from torch import nn  # only here: declaring the options must not import torch

        for name in ("head_module", "expert_module"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, nn.Module) or not callable(value)):
                raise PolytaskError(f"{name} must be a builder returning a new nn.Module on every call, got {type(value).__name__}")
        if self.trunk_module is not None and not callable(self.trunk_module):
            raise PolytaskError(f"trunk_module must be an nn.Module or a builder, got {type(self.trunk_module).__name__}")

    def user_modules(self) -> dict[str, Any]:
        """The user-module fields that are set."""
        return {name: getattr(self, name) for name in MODULE_FIELDS if getattr(self, name) is not None}

    def settings(self) -> dict[str, Any]:
        """The JSON-able fields (widths as lists), as a network config records them."""
        out = {f.name: getattr(self, f.name) for f in fields(LayerOptions) if f.name not in MODULE_FIELDS}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


#: Every field of :class:`LayerOptions`, in declaration order.
LAYER_FIELDS = tuple(f.name for f in fields(LayerOptions))


def layer_options_of(source: Any) -> LayerOptions:
    """The :class:`LayerOptions` fields of ``source`` (a LayerOptions or any subclass of it)."""
    return LayerOptions(**{name: getattr(source, name) for name in LAYER_FIELDS})


def resolve_layers(arch: str, layers: LayerOptions | None, flat: Mapping[str, Any], valid: Sequence[str]) -> LayerOptions:
    """``layers`` (default: the defaults) with the flat keyword arguments ``flat`` applied.

    Names outside LayerOptions get one PolytaskError listing the architecture's ``valid`` options.
    """
    flat = {ALIASES.get(k, k): v for k, v in flat.items()}
    unknown = [k for k in flat if k not in LAYER_FIELDS]
    if unknown:
        raise PolytaskError(f"architecture '{arch}' takes no option '{unknown[0]}' (options: {', '.join(valid)})")
    if layers is None:
        return LayerOptions(**flat)
    if not isinstance(layers, LayerOptions):
        raise PolytaskError(f"architecture '{arch}': layers must be a LayerOptions, got {type(layers).__name__}")
    return replace(layer_options_of(layers), **flat) if flat else layer_options_of(layers)
