"""Multi-task architectures and their registry of names.

Each architecture subclasses :class:`MultiTaskNetwork` and registers under its ``arch`` name,
so a model directory can record the name and its config and rebuild the network on load.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

from polytask.errors import PolytaskError
from polytask.models.base import MultiTaskNetwork
from polytask.models.blocks import input_size
from polytask.models.capacity import capacity_report, format_capacity, stl_baseline
from polytask.models.cross_stitch import CrossStitch
from polytask.models.dselect_k import DSelectK
from polytask.models.from_tasks import network_for_tasks, output_dims_for
from polytask.models.hps import HardSharing
from polytask.models.layers import head, mlp
from polytask.models.mmoe import MultiGateMixture
from polytask.models.mtan import MultiTaskAttention
from polytask.models.ple import CustomizedGateControl, ProgressiveLayeredExtraction
from polytask.models.soft import SoftSharing
from polytask.models.stl import SingleTaskNetworks, matched_stl_trunk

ARCHITECTURES: dict[str, type[MultiTaskNetwork]] = {
    HardSharing.arch: HardSharing,
    SingleTaskNetworks.arch: SingleTaskNetworks,
    SoftSharing.arch: SoftSharing,
    CrossStitch.arch: CrossStitch,
    MultiGateMixture.arch: MultiGateMixture,
    CustomizedGateControl.arch: CustomizedGateControl,
    ProgressiveLayeredExtraction.arch: ProgressiveLayeredExtraction,
    MultiTaskAttention.arch: MultiTaskAttention,
    DSelectK.arch: DSelectK,
}

#: Arguments every architecture receives from the input and tasks rather than as options.
_STRUCTURAL = ("self", "input_dim", "output_dims", "input_shape")


def register(cls: type[MultiTaskNetwork]) -> type[MultiTaskNetwork]:
    """Add an architecture to the registry under ``cls.arch``."""
    ARCHITECTURES[cls.arch] = cls
    return cls


def architecture_options(arch: str) -> list[str]:
    """The options (keyword arguments) architecture ``arch`` accepts."""
    if arch not in ARCHITECTURES:
        raise PolytaskError(f"unknown architecture '{arch}' (choose from {', '.join(sorted(ARCHITECTURES))})")
    params = inspect.signature(ARCHITECTURES[arch].__init__).parameters
    return [p for p in params if p not in _STRUCTURAL and params[p].kind is not inspect.Parameter.VAR_KEYWORD]


def build_network(
    arch: str, input_dim: int | Sequence[int], output_dims: dict[str, int], **options: Any
) -> MultiTaskNetwork:
    """Build the architecture named ``arch``; unknown names and options get a clear error.

    ``input_dim`` is the feature count for tables, or a per-row shape: ``(p,)`` or an image shape
    ``(C, H, W)`` (then passed on as ``input_shape``; see :func:`input_size`).
    """
    valid = architecture_options(arch)
    unknown = [k for k in options if k not in valid and k != "input_shape"]
    if unknown:
        raise PolytaskError(f"architecture '{arch}' takes no option '{unknown[0]}' (options: {', '.join(valid)})")
    cls = ARCHITECTURES[arch]
    if not isinstance(input_dim, int):
        shape = tuple(int(v) for v in input_dim)
        if len(shape) == 1:
            input_dim = shape[0]
        else:
            options = {**options, "input_shape": shape}
            input_dim = None  # type: ignore[assignment]
    try:
        return cls(input_dim=input_dim, output_dims=output_dims, **options)
    except TypeError as exc:
        raise PolytaskError(f"architecture '{arch}': {exc}") from None


def network_from_config(arch: str, config: dict[str, Any]) -> MultiTaskNetwork:
    if arch not in ARCHITECTURES:
        raise PolytaskError(f"model directory names unknown architecture '{arch}'")
    return ARCHITECTURES[arch].from_config(config)


__all__ = [
    "ARCHITECTURES",
    "CrossStitch",
    "CustomizedGateControl",
    "DSelectK",
    "HardSharing",
    "MultiGateMixture",
    "MultiTaskAttention",
    "MultiTaskNetwork",
    "ProgressiveLayeredExtraction",
    "SingleTaskNetworks",
    "SoftSharing",
    "architecture_options",
    "build_network",
    "capacity_report",
    "format_capacity",
    "head",
    "input_size",
    "matched_stl_trunk",
    "mlp",
    "network_for_tasks",
    "network_from_config",
    "output_dims_for",
    "register",
    "stl_baseline",
]
