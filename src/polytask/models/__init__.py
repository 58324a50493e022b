"""Multi-task architectures and their registry of names.

Each architecture subclasses :class:`MultiTaskNetwork` and registers under its ``arch`` name,
so a model directory can record the name and its config and rebuild the network on load.
"""

from __future__ import annotations

from typing import Any

from polytask.errors import PolytaskError
from polytask.models.base import MultiTaskNetwork
from polytask.models.hps import HardSharing
from polytask.models.layers import head, mlp
from polytask.models.stl import SingleTaskNetworks, matched_stl_trunk

ARCHITECTURES: dict[str, type[MultiTaskNetwork]] = {
    HardSharing.arch: HardSharing,
    SingleTaskNetworks.arch: SingleTaskNetworks,
}


def register(cls: type[MultiTaskNetwork]) -> type[MultiTaskNetwork]:
    """Add an architecture to the registry under ``cls.arch``."""
    ARCHITECTURES[cls.arch] = cls
    return cls


def build_network(arch: str, input_dim: int, output_dims: dict[str, int], **options: Any) -> MultiTaskNetwork:
    """Build the architecture named ``arch``; unknown names and options get a clear error."""
    if arch not in ARCHITECTURES:
        raise PolytaskError(f"unknown architecture '{arch}' (choose from {', '.join(sorted(ARCHITECTURES))})")
    cls = ARCHITECTURES[arch]
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
    "HardSharing",
    "MultiTaskNetwork",
    "SingleTaskNetworks",
    "build_network",
    "head",
    "matched_stl_trunk",
    "mlp",
    "network_from_config",
    "register",
]
