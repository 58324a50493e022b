"""Setups: what shapes a training run beyond its settings, behind one small protocol.

:func:`polytask.fit` and :func:`polytask.train_model` take ``setups=[...]``. Before a run
starts, each setup's :meth:`Setup.configure` may change the run's :class:`RunPlan`: the data
it trains on (the shuffle control permutes auxiliary targets), how its network is built and
which learning rate the trunk gets (transfer from a trained model), its callbacks (auxiliary
weight schedules, checkpoints), where it resumes from, and what it records (``controls``, saved
in the model's summary). A setup may also ask for *companion* runs trained after the main one
on the same split (:class:`STLBaseline`: the single-task networks). The trainer itself never
sees a setup.

The setups: :class:`STLBaseline` and :class:`Checkpoints` (here),
:class:`polytask.auxiliary.ShuffleAux`, :class:`polytask.auxiliary.AuxWeightSchedule`,
:class:`polytask.transfer.TransferStart`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polytask.data.prepare import Prepared
from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.models import input_size, matched_stl_trunk
from polytask.models.base import MultiTaskNetwork
from polytask.models.options import LAYER_FIELDS
from polytask.training.callbacks import Callback, CheckpointCallback
from polytask.training.checkpoint import has_checkpoint
from polytask.training.config import TrainConfig

#: ``build(input_size, output_dims) -> network``: replaces building the network from the spec.
NetworkBuilder = Callable[[Any, dict[str, int]], MultiTaskNetwork]


@dataclass
class RunPlan:
    """One training run as the setups shape it (``name``: ``"mtl"`` or a companion's name)."""

    name: str
    prepared: Prepared
    spec: Any
    config: TrainConfig
    train_data: TaskTensors
    callbacks: list[Callback] = field(default_factory=list)
    network_builder: NetworkBuilder | None = None
    shared_lr_scale: float = 1.0
    resume_from: Path | None = None
    controls: dict[str, Any] = field(default_factory=dict)


class Setup:
    """Base of the setups: both methods do nothing."""

    def configure(self, plan: RunPlan) -> None:
        """Change ``plan`` before the run starts (called for the main run and every companion)."""

    def companions(self, plan: RunPlan, mtl: Any) -> dict[str, tuple[Any, TrainConfig]]:
        """Runs to train after the main one (``plan`` and the model ``mtl`` it gave), on the
        same split: ``{name: (spec, config)}``."""
        return {}


def stl_settings(spec: Any, config: TrainConfig, prepared: Prepared | None = None,
                 match_params_to: int | None = None) -> tuple[Any, TrainConfig]:
    """The spec and config of the single-task baseline for an MTL ``spec`` and ``config``:
    architecture ``stl`` with the same layer settings, trained with equal weighting (each
    network sees its own loss alone, so there is nothing to balance). With
    ``match_params_to`` the trunk widths are scaled so the T networks together have about
    that many parameters (``prepared`` gives the input and output sizes)."""
    from dataclasses import replace

    layer_options = {k: v for k, v in spec.options.items() if k in LAYER_FIELDS}
    stl_spec = replace(spec, arch="stl", options=layer_options)  # layer options and user modules carry over
    if match_params_to is not None:
        if prepared is None:
            raise PolytaskError("matching the STL parameter count needs the prepared problem")
        if spec.trunk_module is not None or spec.expert_module is not None:
            raise PolytaskError("matching the STL parameter count scales the trunk widths; a user trunk or expert "
                                "module has none to scale")
        widths = matched_stl_trunk(input_size(prepared.train.x), prepared.output_dims, match_params_to, spec.trunk,
                                   spec.head_hidden, layer_options.get("conv_channels", spec.conv_channels))
        stl_spec = replace(stl_spec, trunk=tuple(widths))
    return stl_spec, config.replace(balancer="ew", balancer_options={})


@dataclass
class STLBaseline(Setup):
    """Also train the single-task baseline on the same split (Caruana's STL comparison).

    ``match_params``: scale the STL widths so all T networks together have about as many
    parameters as the MTL network."""

    match_params: bool = False

    def companions(self, plan: RunPlan, mtl: Any) -> dict[str, tuple[Any, TrainConfig]]:
        target = mtl.network.parameter_counts()["total"] if self.match_params else None
        return {"stl": stl_settings(plan.spec, plan.config, plan.prepared, target)}


@dataclass
class Checkpoints(Setup):
    """A resumable checkpoint after every epoch in ``directory/<run name>`` (a failed run keeps
    its last good one); ``resume=True`` continues each run from its checkpoint there (the main
    run must have one; a companion without one starts afresh, as it never began)."""

    directory: str | Path
    resume: bool = False
    every: int = 1

    def configure(self, plan: RunPlan) -> None:
        where = Path(self.directory) / plan.name
        plan.callbacks.append(CheckpointCallback(where, self.every))
        if not self.resume:
            return
        if has_checkpoint(where):
            plan.resume_from = where
        elif plan.name == "mtl":
            raise PolytaskError(f"no checkpoint to resume from in '{where}'")
