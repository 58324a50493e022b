"""polytask: multi-task learning with shared representations, STL baselines and balancing.

The curated public API::

    import polytask as pt
    report = pt.fit("data.csv", pt.Targets(["y1", "y2"], aux=["later_lab"]), setups=[pt.STLBaseline()])
    report.mtl.save("model/")
    model = pt.load("model/")
    preds = model.predict(new_rows)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from polytask.lazy import lazy_exports
from polytask.version import __version__

#: Where each public name lives: imported on first use, so ``import polytask`` (and the command
#: line's ``--help``) costs nothing until torch or pandas are needed.
__getattr__, __dir__ = lazy_exports(__name__, {
    "AuxWeightSchedule": "polytask.auxiliary",
    "ShuffleAux": "polytask.auxiliary",
    "DataConfig": "polytask.data.config",
    "Prepared": "polytask.data.prepare",
    "prepare": "polytask.data.prepare",
    "NonFiniteLossError": "polytask.errors",
    "PolytaskError": "polytask.errors",
    "FittedModel": "polytask.fitted",
    "load": ("polytask.fitted", "load_model"),
    "Checkpoints": "polytask.setups",
    "RunPlan": "polytask.setups",
    "Setup": "polytask.setups",
    "STLBaseline": "polytask.setups",
    "Targets": "polytask.tasks",
    "Task": "polytask.tasks",
    "TaskKind": "polytask.tasks",
    "Callback": "polytask.training.callbacks",
    "TrainConfig": "polytask.training.config",
    "Trainer": "polytask.training.trainer",
    "TransferStart": "polytask.transfer",
    "NetworkSpec": "polytask.models.spec",
    "FitReport": "polytask.workflow",
    "fit": "polytask.workflow",
    "train_model": "polytask.workflow",
})

if TYPE_CHECKING:
    from polytask.auxiliary import AuxWeightSchedule, ShuffleAux
    from polytask.data.config import DataConfig
    from polytask.data.prepare import Prepared, prepare
    from polytask.errors import NonFiniteLossError, PolytaskError
    from polytask.fitted import FittedModel
    from polytask.fitted import load_model as load
    from polytask.models.spec import NetworkSpec
    from polytask.setups import Checkpoints, RunPlan, Setup, STLBaseline
    from polytask.tasks import Targets, Task, TaskKind
    from polytask.training import Callback, TrainConfig, Trainer
    from polytask.transfer import TransferStart
    from polytask.workflow import FitReport, fit, train_model


__all__ = [
    "AuxWeightSchedule",
    "Callback",
    "Checkpoints",
    "DataConfig",
    "FitReport",
    "FittedModel",
    "NetworkSpec",
    "NonFiniteLossError",
    "PolytaskError",
    "Prepared",
    "RunPlan",
    "STLBaseline",
    "Setup",
    "ShuffleAux",
    "Targets",
    "Task",
    "TaskKind",
    "TrainConfig",
    "Trainer",
    "TransferStart",
    "__version__",
    "fit",
    "load",
    "prepare",
    "train_model",
]
