"""Transfer to new tasks (Caruana 1997, "sequential transfer"; the usual fine-tuning recipe).

A new task often arrives with little data. ``TransferStart`` takes a trained model's shared
trunk (the parameters its ``shared_parameters()`` names, plus the buffers of the same
modules), builds the same architecture with fresh heads for the new tasks, and copies the trunk
in. Training then either freezes the trunk (``freeze_trunk``: learning rate 0 for the shared
parameters, so they stay bit-identical; gradients still flow, so every balancer works) or
fine-tunes it at ``trunk_lr_scale`` times the learning rate.

The new rows are encoded with the source model's preprocessing (the trunk was trained on those
standardized inputs), so the new data must hold the source's feature columns. The trunk comes
from the source network as loaded (the snapshot of its latest best epoch).

Caveat: with batch normalization in the trunk, its running statistics still adapt in training
mode even when the weights are frozen.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from polytask.data.tensors import TaskTensors, to_tensors
from polytask.errors import PolytaskError
from polytask.fitted import FittedModel, load_model
from polytask.models import network_from_config
from polytask.models.base import MultiTaskNetwork
from polytask.setups import RunPlan, Setup


def shared_state_names(network: MultiTaskNetwork) -> list[str]:
    """State-dict keys of the shared trunk: shared parameters and their modules' buffers."""
    shared_ids = {id(p) for p in network.shared_parameters()}
    params = [n for n, p in network.named_parameters() if id(p) in shared_ids]
    modules = {n.rpartition(".")[0] for n in params}
    return [k for k in network.state_dict() if k in params or k.rpartition(".")[0] in modules]


def load_source(source: Any) -> Any:
    """A :class:`~polytask.fitted.FittedModel` from a model or a model directory."""
    if isinstance(source, FittedModel):
        return source
    if isinstance(source, (str, Path)):
        return load_model(source)
    raise PolytaskError(f"cannot initialise from {type(source).__name__}: give a model directory or a FittedModel")


def _shape(size: Any) -> list[int]:
    return [int(v) for v in size] if isinstance(size, (list, tuple)) else [int(size)]


@dataclass
class TransferStart(Setup):
    """How to start training new tasks from a trained model's trunk; as a setup it changes
    the main run only (the STL baseline always trains from scratch)."""

    source: Any
    freeze_trunk: bool = False
    trunk_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        self.source = load_source(self.source)
        if not self.trunk_lr_scale >= 0:
            raise PolytaskError(f"trunk learning-rate scale must be >= 0, got {self.trunk_lr_scale}")
        net = self.source.network
        if not shared_state_names(net):
            raise PolytaskError(f"the source model (architecture '{net.arch}') has no shared trunk to reuse")
        if net.config().get("trunk") == "custom":
            raise PolytaskError("the source model has a custom trunk; build the network yourself to reuse it")

    @property
    def shared_lr_scale(self) -> float:
        """The learning-rate multiplier of the shared parameters (0 when frozen)."""
        return 0.0 if self.freeze_trunk else float(self.trunk_lr_scale)

    def prepared(self, prepared: Any) -> Any:
        """``prepared`` with features re-encoded by the source model's preprocessing."""
        pre = self.source.preprocessor
        missing = [c for c in pre.columns_ if c not in prepared.frame.columns]
        if missing:
            raise PolytaskError(f"feature column '{missing[0]}' of the source model is missing from the new data")
        tensors = to_tensors(prepared.frame, pre, prepared.encoders)
        s = prepared.split
        return replace(
            prepared,
            preprocessor=pre,
            train=tensors.subset(s.train),
            val=tensors.subset(s.val),
            test=tensors.subset(s.test),
        )

    def builder(self) -> Callable[[Any, dict[str, int]], MultiTaskNetwork]:
        """``build(input_dim, output_dims)``: the source architecture with new heads and the
        source trunk copied in."""

        def build(input_dim: Any, output_dims: dict[str, int]) -> MultiTaskNetwork:
            src = self.source.network
            config = dict(src.config())
            if "input_dim" in config and _shape(config["input_dim"]) != _shape(input_dim):
                raise PolytaskError(f"the new data encodes to {input_dim} inputs, the source trunk takes {config['input_dim']}")
            config["output_dims"] = dict(output_dims)
            network = network_from_config(src.arch, config)
            source_state = src.state_dict()
            names = shared_state_names(src)
            state = network.state_dict()
            for name in names:
                if name not in state or state[name].shape != source_state[name].shape:
                    raise PolytaskError(f"trunk tensor '{name}' does not fit the new network")
                state[name] = source_state[name].detach().clone()
            network.load_state_dict(state)
            return network

        return build

    def configure(self, plan: RunPlan) -> None:
        if plan.name != "mtl":
            return
        plan.prepared = self.prepared(plan.prepared)
        plan.train_data = TaskTensors(plan.prepared.train.x, plan.train_data.targets, plan.train_data.masks)
        plan.network_builder = self.builder()
        plan.shared_lr_scale = self.shared_lr_scale
        plan.controls["init_from"] = self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_tasks": [t.name for t in self.source.tasks],
            "freeze_trunk": self.freeze_trunk,
            "trunk_lr_scale": self.shared_lr_scale,
        }
