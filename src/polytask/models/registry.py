"""The registry of architectures: their names and options, and building one from options or
from a saved config.

Names are normalised (``"Cross-Stitch"`` is ``cross_stitch``, ``--arch-option n-experts=8`` is
``n_experts``); an unknown name gets one PolytaskError listing the valid ones.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from polytask.errors import PolytaskError
from polytask.models.base import MultiTaskNetwork
from polytask.models.cross_stitch import CrossStitch
from polytask.models.dselect_k import DSelectK
from polytask.models.hps import HardSharing
from polytask.models.mmoe import MultiGateMixture
from polytask.models.mtan import MultiTaskAttention
from polytask.models.options import ALIASES, MODULE_FIELDS, LayerOptions, normal_name
from polytask.models.ple import CustomizedGateControl, ProgressiveLayeredExtraction
from polytask.models.soft import SoftSharing
from polytask.models.stl import SingleTaskNetworks
from polytask.registry import Registry
from polytask.models.user_modules import check_given, required_modules

ARCHITECTURES: Registry[type[MultiTaskNetwork]] = Registry("architecture", {
    HardSharing.arch: HardSharing,
    SingleTaskNetworks.arch: SingleTaskNetworks,
    SoftSharing.arch: SoftSharing,
    CrossStitch.arch: CrossStitch,
    MultiGateMixture.arch: MultiGateMixture,
    CustomizedGateControl.arch: CustomizedGateControl,
    ProgressiveLayeredExtraction.arch: ProgressiveLayeredExtraction,
    MultiTaskAttention.arch: MultiTaskAttention,
    DSelectK.arch: DSelectK,
})

#: Arguments every architecture receives from the input and tasks rather than as options.
_STRUCTURAL = ("self", "input_dim", "output_dims", "input_shape", "layers")


def register(cls: type[MultiTaskNetwork]) -> type[MultiTaskNetwork]:
    """Add an architecture to the registry under ``cls.arch`` (normalised)."""
    ARCHITECTURES.register(normal_name(cls.arch), cls)
    return cls


def architecture_name(arch: str) -> str:
    """The registered name ``arch`` stands for, or a PolytaskError listing the names."""
    return ARCHITECTURES.key(arch)


def architecture_options(arch: str) -> list[str]:
    """The options (keyword arguments) architecture ``arch`` accepts: the common layer options,
    the user modules it takes, then its own."""
    cls = ARCHITECTURES[architecture_name(arch)]
    names = getattr(cls, "option_names", None)
    if names is not None:
        return list(names())
    params = inspect.signature(cls.__init__).parameters  # a registered class of the user's own
    return [p for p in params if p not in _STRUCTURAL and params[p].kind is not inspect.Parameter.VAR_KEYWORD]


def specific_options(arch: str) -> dict[str, Any]:
    """Architecture ``arch``'s own options and their defaults (not the common ones)."""
    cls = ARCHITECTURES[architecture_name(arch)]
    own = getattr(cls, "specific_options", None)
    if own is not None:
        return dict(own())
    params = inspect.signature(cls.__init__).parameters
    return {k: params[k].default for k in architecture_options(arch) if params[k].default is not inspect.Parameter.empty}


def build_network(
    arch: str,
    input_dim: int | Sequence[int],
    output_dims: dict[str, int],
    layers: LayerOptions | None = None,
    **options: Any,
) -> MultiTaskNetwork:
    """Build the architecture named ``arch``; unknown names and options get a clear error.

    ``input_dim`` is the feature count for tables, or a per-row shape: ``(p,)`` or an image shape
    ``(C, H, W)`` (then passed on as ``input_shape``; see :func:`input_size`). ``layers`` holds
    the common options; flat keywords (``trunk=(8,)``, ``n_experts=3``) are applied on top.
    """
    name = architecture_name(arch)
    options = {ALIASES.get(normal_name(k), normal_name(k)): v for k, v in options.items()}
    valid = architecture_options(name)
    # a user module the architecture refuses is left to it: its error says why
    unknown = [k for k in options if k not in valid and k not in MODULE_FIELDS and k != "input_shape"]
    if unknown:
        raise PolytaskError(f"architecture '{name}' takes no option '{unknown[0]}' (options: {', '.join(valid)})")
    if not isinstance(input_dim, int):
        shape = tuple(int(v) for v in input_dim)
        if len(shape) == 1:
            input_dim = shape[0]
        else:
            options = {**options, "input_shape": shape}
            input_dim = None  # type: ignore[assignment]
    if layers is not None:
        options = {"layers": layers, **options}
    try:
        return ARCHITECTURES[name](input_dim=input_dim, output_dims=output_dims, **options)
    except TypeError as exc:
        raise PolytaskError(f"architecture '{name}': {exc}") from None


def network_from_config(
    arch: str, config: dict[str, Any], modules: Mapping[str, Any] | None = None, source: str = "the network config"
) -> MultiTaskNetwork:
    """Rebuild the network a config describes (see :mod:`polytask.models.network` for its
    keys). ``modules`` gives the user modules the config records (``trunk_module=``...); a
    missing one, or one the config does not use, is a one-line PolytaskError naming ``source``
    (such as ``"model directory 'm'"``)."""
    name = normal_name(arch)
    if name not in ARCHITECTURES:
        raise PolytaskError(f"{source} names unknown architecture '{arch}'")
    given = check_given(required_modules(config), dict(modules or {}), source)
    return ARCHITECTURES[name].from_config({**config, **given})
