"""Multi-task architectures and their registry of names.

Each architecture subclasses :class:`MultiTaskNetwork` and registers under its ``arch`` name,
so a model directory can record the name and its config and rebuild the network on load.
The options every architecture shares are one dataclass, :class:`LayerOptions`;
:class:`NetworkSpec` adds the architecture's name and its own options.
"""

from typing import TYPE_CHECKING

from polytask.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "MultiTaskNetwork": "polytask.models.base",
    "input_size": "polytask.models.blocks",
    "capacity_report": "polytask.models.capacity",
    "format_capacity": "polytask.models.capacity",
    "stl_baseline": "polytask.models.capacity",
    "CrossStitch": "polytask.models.cross_stitch",
    "DSelectK": "polytask.models.dselect_k",
    "network_for_tasks": "polytask.models.from_tasks",
    "output_dims_for": "polytask.models.from_tasks",
    "HardSharing": "polytask.models.hps",
    "head": "polytask.models.layers",
    "mlp": "polytask.models.layers",
    "MultiGateMixture": "polytask.models.mmoe",
    "MultiTaskAttention": "polytask.models.mtan",
    "LayerOptions": "polytask.models.options",
    "CustomizedGateControl": "polytask.models.ple",
    "ProgressiveLayeredExtraction": "polytask.models.ple",
    "ARCHITECTURES": "polytask.models.registry",
    "architecture_options": "polytask.models.registry",
    "build_network": "polytask.models.registry",
    "network_from_config": "polytask.models.registry",
    "register": "polytask.models.registry",
    "specific_options": "polytask.models.registry",
    "SoftSharing": "polytask.models.soft",
    "NetworkSpec": "polytask.models.spec",
    "SingleTaskNetworks": "polytask.models.stl",
    "matched_stl_trunk": "polytask.models.stl",
})

if TYPE_CHECKING:
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
    from polytask.models.registry import ARCHITECTURES, architecture_options, build_network, network_from_config, register, specific_options
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
