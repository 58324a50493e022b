"""polytask: multi-task learning with shared representations, STL baselines and balancing.

The curated public API::

    import polytask as pt
    report = pt.fit("data.csv", pt.Targets(["y1", "y2"], aux=["later_lab"]), setups=[pt.STLBaseline()])
    report.mtl.save("model/")
    model = pt.load("model/")
    preds = model.predict(new_rows)
"""

from __future__ import annotations

from polytask.auxiliary import AuxWeightSchedule, ShuffleAux
from polytask.data.config import DataConfig
from polytask.data.prepare import Prepared, prepare
from polytask.errors import NonFiniteLossError, PolytaskError
from polytask.fitted import FittedModel
from polytask.fitted import load_model as load
from polytask.setups import Checkpoints, RunPlan, Setup, STLBaseline
from polytask.tasks import Targets, Task, TaskKind
from polytask.training import Callback, TrainConfig, Trainer
from polytask.transfer import TransferStart
from polytask.version import __version__
from polytask.models.spec import NetworkSpec
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
