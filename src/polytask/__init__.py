"""polytask: multi-task learning with shared representations, STL baselines and balancing.

The curated public API::

    import polytask as pt
    report = pt.fit("data.csv", targets=["y1", "y2"], aux=["later_lab"], stl=True)
    report.mtl.save("model/")
    model = pt.load("model/")
    preds = model.predict(new_rows)
"""

from __future__ import annotations

__version__ = "0.1.0"

from polytask.errors import NonFiniteLossError, PolytaskError
from polytask.fitted import FittedModel
from polytask.io import load_model as load
from polytask.models.spec import NetworkSpec
from polytask.tasks import Task, TaskKind
from polytask.training import Callback, TrainConfig, Trainer
from polytask.workflow import FitReport, Prepared, fit, prepare, train_model

__all__ = [
    "Callback",
    "FitReport",
    "FittedModel",
    "NetworkSpec",
    "NonFiniteLossError",
    "PolytaskError",
    "Prepared",
    "Task",
    "TaskKind",
    "TrainConfig",
    "Trainer",
    "__version__",
    "fit",
    "load",
    "prepare",
    "train_model",
]
