"""Training: the loop, its configuration, callbacks, early stopping and checkpoints."""

from typing import TYPE_CHECKING

from polytask.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "Callback": "polytask.training.callbacks",
    "CheckpointCallback": "polytask.training.callbacks",
    "JsonLinesLogger": "polytask.training.callbacks",
    "ProgressCallback": "polytask.training.callbacks",
    "TrainConfig": "polytask.training.config",
    "EarlyStopping": "polytask.training.early_stopping",
    "TrainResult": "polytask.training.trainer",
    "Trainer": "polytask.training.trainer",
    "predict_raw": "polytask.training.trainer",
    "resolve_device": "polytask.training.trainer",
})

if TYPE_CHECKING:
    from polytask.training.callbacks import Callback, CheckpointCallback, JsonLinesLogger, ProgressCallback
    from polytask.training.config import TrainConfig
    from polytask.training.early_stopping import EarlyStopping
    from polytask.training.trainer import TrainResult, Trainer, predict_raw, resolve_device

__all__ = [
    "Callback",
    "CheckpointCallback",
    "EarlyStopping",
    "JsonLinesLogger",
    "ProgressCallback",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "predict_raw",
    "resolve_device",
]
