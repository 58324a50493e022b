"""The set-up every architecture shares: its options, its input, its parts and its config.

An architecture's constructor reads ``(input_dim, output_dims, layers, *, input_shape,
<its own options>)``; :meth:`BlockNetwork._setup` resolves the :class:`LayerOptions` (flat
keywords such as ``trunk=(8,)`` are applied on top, so ``HardSharing(6, dims, trunk=(8,))``
still works), checks the user modules against what the architecture accepts and records the
JSON-able config::

    {"input_dim", "output_dims", "input_shape", "trunk", "head_hidden", "activation",
     "dropout", "norm", "conv_channels", <the architecture's own options>,
     "user_modules": {"head_module": "pkg.make_head"}}        # only with user modules

(``"trunk": "custom"`` when the trunk, towers or experts come from the user). The parts a user
may replace are built here: :meth:`make_tower`, :meth:`make_experts`, :meth:`make_heads`.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from polytask.errors import PolytaskError
from polytask.models.base import MultiTaskNetwork
from polytask.losses import OutputLayout
from polytask.models.blocks import encoder, resolve_input_shape, task_heads
from polytask.models.heads import FusedHeads, PerTaskHeads
from polytask.models.options import LAYER_FIELDS, MODULE_FIELDS, LayerOptions, resolve_layers
from polytask.models.user_modules import (
    build_module,
    check_partition,
    constructor_arguments,
    distinct,
    output_width,
    recorded_modules,
    user_heads,
)

#: What ``head_module`` builds, in every architecture that has heads (all of them).
HEADS = "each task's head, head_module(task, in_dim, out_dim)"
#: User modules that replace the shared encoders (the config's trunk widths then read "custom").
_ENCODERS = ("trunk_module", "expert_module")


class BlockNetwork(MultiTaskNetwork):
    """Base of the architectures: common options, input shape, parts and config."""

    #: The user modules this architecture takes, each with what it builds.
    accepts: dict[str, str] = {"head_module": HEADS}
    #: Why it refuses the other user modules (the error message gives the reason).
    refuses: dict[str, str] = {}

    @classmethod
    def specific_options(cls) -> dict[str, Any]:
        """This architecture's own options and their defaults (its keyword-only arguments)."""
        params = inspect.signature(cls.__init__).parameters
        return {k: p.default for k, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and k != "input_shape"}

    @classmethod
    def option_names(cls) -> list[str]:
        """Every option it takes: the common layer options, the user modules it accepts, its own."""
        common = [f for f in LAYER_FIELDS if f not in MODULE_FIELDS or f in cls.accepts]
        return common + list(cls.specific_options())

    def _setup(
        self,
        input_dim: int | None,
        output_dims: dict[str, int],
        input_shape: Sequence[int] | None,
        layers: LayerOptions | None,
        flat: dict[str, Any],
        **specific: Any,
    ) -> None:
        if not output_dims:
            raise PolytaskError(f"architecture '{self.arch}' needs at least one task")
        self.layers = resolve_layers(self.arch, layers, flat, self.option_names())
        for name in self.layers.user_modules():
            if name not in self.accepts:
                reason = self.refuses.get(name, f"it has no {MODULE_FIELDS[name]}")
                raise PolytaskError(f"architecture '{self.arch}' cannot take a user {MODULE_FIELDS[name]} module: {reason}")
        self.input_shape = resolve_input_shape(input_dim, input_shape)
        self.is_image = len(self.input_shape) == 3
        lay = self.layers
        self.trunk_widths, self.head_hidden, self.conv_channels = lay.trunk, lay.head_hidden, lay.conv_channels
        self.activation, self.dropout, self.norm = lay.activation, lay.dropout, lay.norm
        self.output_dims = {k: int(v) for k, v in output_dims.items()}
        self._config: dict[str, Any] = {
            "input_dim": None if self.is_image else self.input_shape[0],
            "output_dims": dict(self.output_dims),
            "input_shape": list(self.input_shape),
            **lay.settings(),
            **specific,
        }
        user = lay.user_modules()
        if user:
            if any(name in user for name in _ENCODERS):
                self._config["trunk"] = "custom"
            self._config["user_modules"] = recorded_modules(user)

    def _finish(self) -> None:
        """Checks once every part is built: user modules must not share parameters."""
        if self.layers.user_modules():
            check_partition(self)

    def make_encoder(self, input_shape: Sequence[int] | None = None) -> tuple[nn.Sequential, int]:
        """One built-in expert / tower on ``input_shape`` (default: the network's input)."""
        lay = self.layers
        return encoder(input_shape or self.input_shape, lay.trunk, lay.conv_channels, lay.activation, lay.dropout, lay.norm)

    def make_tower(self) -> tuple[nn.Module, int]:
        """One task's tower: the user's ``trunk_module`` (a builder, or a copy of a module) or
        the built-in encoder, with its output width."""
        if self.layers.trunk_module is None:
            return self.make_encoder()
        tower = build_module(self.layers.trunk_module, self.input_shape, "trunk", copy_instance=True)
        return tower, output_width(tower, self.input_shape, "trunk module")

    def make_experts(self, count: int, input_shape: Sequence[int] | None = None) -> tuple[list[nn.Module], int]:
        """``count`` experts on ``input_shape`` (the user's ``expert_module`` or built-in
        encoders) and their common output width."""
        shape = tuple(input_shape or self.input_shape)
        if self.layers.expert_module is None:
            built = [self.make_encoder(shape) for _ in range(count)]
            return [m for m, _ in built], built[-1][1] if built else 0
        experts = [build_module(self.layers.expert_module, shape, "expert") for _ in range(count)]
        distinct(experts, "expert")
        widths = {output_width(e, shape, "expert module") for e in experts}
        if len(widths) > 1:
            raise PolytaskError(f"the expert modules give outputs of widths {sorted(widths)}: experts that are mixed need one width")
        return experts, widths.pop() if widths else 0

    def make_heads(self, rep_dim: int, shared_input: bool = False) -> FusedHeads | PerTaskHeads:
        """One head per task on ``rep_dim`` inputs: the user's ``head_module`` or built-in MLPs.
        ``shared_input``: every head reads the same representation, so built-in heads of the
        same shape are evaluated together (:class:`FusedHeads`)."""
        if self.layers.head_module is not None:
            return user_heads(self.layers.head_module, self.output_dims, rep_dim)
        if shared_input:
            return FusedHeads(self.output_dims, rep_dim, self.head_hidden, self.activation, self.dropout)
        return task_heads(self.output_dims, rep_dim, self.head_hidden, self.activation, self.dropout)

    def output_layout(self) -> OutputLayout:
        heads = getattr(self, "heads", None)
        if isinstance(heads, (FusedHeads, PerTaskHeads)):
            return heads.layout
        if getattr(self, "_layout", None) is None:
            self._layout = OutputLayout.of(self.output_dims)
        return self._layout

    @property
    def flat_input_dim(self) -> int:
        """Number of input values per row (what gates read, flattened)."""
        return int(math.prod(self.input_shape))

    def config(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._config.items()}

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "MultiTaskNetwork":
        """Rebuild from :meth:`config`; user modules must be in ``config`` under their field
        names (:func:`polytask.models.network_from_config` checks that they are)."""
        return cls(**constructor_arguments(config))
