"""Training: the loop, its configuration, callbacks, early stopping and checkpoints."""

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
