"""Multi-task architectures and their registry of names.

Each architecture subclasses :class:`MultiTaskNetwork` and registers under its ``arch`` name,
so a model directory can record the name and its config and rebuild the network on load.
The options every architecture shares are one dataclass, :class:`LayerOptions`;
:class:`NetworkSpec` adds the architecture's name and its own options.
"""

from __future__ import annotations

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
from polytask.models.options import LayerOptions
from polytask.models.ple import CustomizedGateControl, ProgressiveLayeredExtraction
from polytask.models.registry import (
    ARCHITECTURES,
    architecture_options,
    build_network,
    network_from_config,
    register,
    specific_options,
)
from polytask.models.soft import SoftSharing
from polytask.models.spec import NetworkSpec
from polytask.models.stl import SingleTaskNetworks, matched_stl_trunk

__all__ = [
    "ARCHITECTURES",
    "CrossStitch",
    "CustomizedGateControl",
    "DSelectK",
    "HardSharing",
    "LayerOptions",
    "MultiGateMixture",
    "MultiTaskAttention",
    "MultiTaskNetwork",
    "NetworkSpec",
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
    "specific_options",
    "stl_baseline",
]
