"""The single declaration of a network's settings.

:class:`NetworkSpec` is :class:`~polytask.models.options.LayerOptions` (the options every
architecture shares, and the user modules) plus the architecture's name and its own
options. Every field is declared with :func:`polytask.settings.option`, so the CLI flags
(``--trunk``, ``--arch-option KEY=VALUE``...) and the scikit-learn parameters are generated
from here; the user-module fields are Python only::

    spec = NetworkSpec(arch="mmoe", trunk=(32,), options={"n_experts": 8})
    network = spec.build(20, {"y1": 1, "y2": 3})      # 20 features; or an image shape (C, H, W)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import InitVar, dataclass
from typing import TYPE_CHECKING, Any

from polytask.errors import PolytaskError
from polytask.models.names import BUILTIN_ARCHITECTURES
from polytask.models.options import MODULE_FIELDS, LayerOptions, layer_options_of, normal_name
from polytask.settings import option

if TYPE_CHECKING:
    from polytask.models.base import MultiTaskNetwork

__all__ = ["LayerOptions", "NetworkSpec"]


@dataclass
class NetworkSpec(LayerOptions):
    """Which architecture to build, and how (``custom_trunk=`` is the older name of ``trunk_module``)."""

    arch: str = option("hps", help="Architecture: " + ", ".join(sorted(a for a in BUILTIN_ARCHITECTURES if a != "stl"))
                       + " (see `polytask architectures`).")
    options: dict[str, Any] = option(
        default_factory=dict, kind="mapping", cli="--arch-option", sklearn="arch_options",
        help="Architecture-specific option KEY=VALUE (repeatable), e.g. n_experts=8.")
    custom_trunk: InitVar[Any] = None

    def __post_init__(self, custom_trunk: Any = None) -> None:  # type: ignore[override]
        if custom_trunk is not None:
            if self.trunk_module is not None and self.trunk_module is not custom_trunk:
                raise PolytaskError("give trunk_module or custom_trunk (its older name), not both")
            self.trunk_module = custom_trunk
        super().__post_init__()
        from polytask.models.registry import architecture_name, architecture_options  # the architectures import torch

        self.arch = architecture_name(self.arch)
        self.options = {normal_name(k): v for k, v in dict(self.options or {}).items()}
        valid = architecture_options(self.arch)
        unknown = [k for k in self.options if k not in valid and k not in MODULE_FIELDS]
        if unknown:
            raise PolytaskError(f"architecture '{self.arch}' takes no option '{unknown[0]}' (options: {', '.join(valid)})")

    def layers(self) -> LayerOptions:
        """The common options (and user modules) alone."""
        return layer_options_of(self)

    def kwargs(self) -> dict[str, Any]:
        """Flat keyword arguments of :func:`polytask.models.build_network`: the layer options,
        the user modules that are set, then the architecture's own options."""
        return {**self.layers().settings(), **self.layers().user_modules(), **self.options}

    def build(self, input_dim: int | Sequence[int], output_dims: dict[str, int]) -> MultiTaskNetwork:
        """The network for rows of ``input_dim`` features (or of shape ``(C, H, W)``) and
        tasks with ``output_dims`` outputs."""
        from polytask.models.registry import build_network

        return build_network(self.arch, input_dim, output_dims, self.layers(), **self.options)
