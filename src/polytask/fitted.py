"""A trained multi-task model: preprocessing, target encoders, network and best-epoch snapshots.

``predict`` returns one column per main task (auxiliary tasks are trained, never predicted):
the value for regression, the label plus ``<task>:proba_<class>`` columns for classification,
and a 0/1 column plus a ``:proba`` column per label for multilabel. With per-task early
stopping each task is predicted by the snapshot of its own best epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from polytask.data.preprocessing import FeaturePreprocessor
from polytask.data.columns import missing_cells
from polytask.data.tables import TableLike, as_frame, with_kept_columns
from polytask.data.targets import TargetEncoder, validate_targets
from polytask.data.tensors import to_tensors
from polytask.errors import PolytaskError
from polytask.evaluate import metrics_by_task
from polytask.io import read_model_files, save_model_files
from polytask.model_meta import model_parts
from polytask.models.base import MultiTaskNetwork
from polytask.tasks import Task
from polytask.training.trainer import predict_raw


@dataclass
class FittedModel:
    """Everything needed to predict, evaluate and save a trained model."""

    network: MultiTaskNetwork
    tasks: list[Task]
    encoders: list[TargetEncoder]
    preprocessor: FeaturePreprocessor
    snapshots: dict[int, dict[str, torch.Tensor]]
    best_epoch: dict[str, int]
    train_config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def main_tasks(self) -> list[Task]:
        return [t for t in self.tasks if not t.auxiliary]

    @property
    def feature_columns(self) -> list[str]:
        return list(self.preprocessor.columns_)

    def _check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.feature_columns if c not in frame.columns]
        if missing:
            raise PolytaskError(f"feature column '{missing[0]}' used in training is missing from the data")

    def raw_outputs(self, data: TableLike) -> dict[str, np.ndarray]:
        """Raw network outputs per task (logits or standardized values), each task from the
        snapshot of its best epoch."""
        frame = as_frame(data)
        self._check_columns(frame)
        return self.raw_outputs_from_features(torch.from_numpy(self.preprocessor.transform(frame)))

    def raw_outputs_from_features(self, x: torch.Tensor) -> dict[str, np.ndarray]:
        """As :meth:`raw_outputs`, from already preprocessed features ``x``."""
        x = x.to(next(self.network.parameters()).device)
        # the network's own tensors, restored in place afterwards (a state-dict round trip
        # would copy each task's entries of the fused heads one by one)
        tensors = [*self.network.parameters(), *self.network.buffers()]
        current = [t.detach().clone() for t in tensors]
        outputs: dict[str, np.ndarray] = {}
        try:
            for epoch in sorted(set(self.best_epoch.values())):
                if epoch in self.snapshots:
                    self.network.load_state_dict(self.snapshots[epoch])
                raw = predict_raw(self.network, x)
                for task, best in self.best_epoch.items():
                    if best == epoch:
                        outputs[task] = raw[task].cpu().numpy()
        finally:
            with torch.no_grad():
                for t, saved in zip(tensors, current):
                    t.copy_(saved)
        return outputs

    def predict_outputs(self, data: TableLike, include_auxiliary: bool = False) -> dict[str, dict[str, np.ndarray]]:
        """Decoded predictions per task: ``{"value"}`` or ``{"proba", "label"}``; a task whose
        network output is not finite in some rows is a PolytaskError naming it and the count."""
        raw = self.raw_outputs(data)
        decoded = {}
        for enc in self.encoders:
            if include_auxiliary or not enc.task.auxiliary:
                decoded[enc.task.name] = enc.decode(raw[enc.task.name])
                check_finite_outputs(enc.task.name, raw[enc.task.name], *decoded[enc.task.name].values())
        return decoded

    def predict(self, data: TableLike, include_auxiliary: bool = False) -> pd.DataFrame:
        """A DataFrame of predictions, one block of columns per (main) task, after the columns
        the model keeps (``DataConfig.keep``) copied from ``data``."""
        frame = as_frame(data)
        decoded = self.predict_outputs(frame, include_auxiliary)
        columns: dict[str, Any] = {}
        for enc in self.encoders:
            task = enc.task
            if task.name not in decoded:
                continue
            d = decoded[task.name]
            if task.kind == "regression":
                for j, col in enumerate(task.columns):
                    columns[col if len(task.columns) > 1 else task.name] = d["value"][:, j]
            elif task.kind == "multilabel":
                for j, col in enumerate(task.columns):
                    columns[col] = d["label"][:, j]
                    columns[f"{col}:proba"] = d["proba"][:, j]
            else:
                columns[task.name] = d["label"]
                for j, cls in enumerate(enc.classes_):
                    columns[f"{task.name}:proba_{cls}"] = d["proba"][:, j]
        return with_kept_columns(frame, pd.DataFrame(columns), self.preprocessor.keep_)

    def evaluate(self, data: TableLike, include_auxiliary: bool = False) -> dict[str, dict[str, float]]:
        """Per-task metrics on labelled ``data`` (missing labels are ignored)."""
        frame = self.preprocessor.missing_as_nan(as_frame(data))
        tasks = [t for t in self.tasks if include_auxiliary or not t.auxiliary]
        validate_columns = [t for t in tasks if all(c in frame.columns for c in t.columns)]
        missing = [t for t in tasks if t not in validate_columns]
        if missing:
            raise PolytaskError(f"target column '{missing[0].columns[0]}' of task '{missing[0].name}' is not in the data")
        encs = [e for e in self.encoders if e.task in tasks]
        labelled = [e for e in encs if any((~missing_cells(frame[c])).any() for c in e.task.columns)]
        if not labelled:
            raise PolytaskError("the data holds no label for any task")
        validate_targets(frame, [e.task for e in labelled if e.task.kind in ("regression", "multilabel")])
        tensors = to_tensors(frame, self.preprocessor, labelled)
        raw = self.raw_outputs_from_features(tensors.x)
        return metrics_by_task(labelled, raw, tensors.targets, tensors.masks)

    def parameter_counts(self) -> dict[str, int]:
        return self.network.parameter_counts()

    # -- the model directory -----------------------------------------------------------------
    def to_files(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """``(meta, tensors)`` of the model directory: the JSON-able description (architecture
        and config, tasks, encoders, preprocessing, best epochs, training settings, summary) and
        one tensor per (snapshot epoch, parameter), ``"epoch{e}/{name}"``."""
        tensors = {f"epoch{epoch}/{name}": t for epoch, state in self.snapshots.items() for name, t in state.items()}
        meta = {
            "arch": self.network.arch,
            "network": self.network.config(),
            "tasks": [t.to_dict() for t in self.tasks],
            "encoders": {e.task.name: e.to_dict() for e in self.encoders},
            "preprocessing": self.preprocessor.to_dict(),
            "best_epoch": self.best_epoch,
            "train_config": self.train_config,
            "summary": self.summary,
        }
        return meta, tensors

    @classmethod
    def from_files(cls, meta: dict[str, Any], tensors: dict[str, torch.Tensor], modules: dict[str, Any],
                   source: str) -> "FittedModel":
        """The model :meth:`to_files` described, every entry checked first
        (:func:`polytask.model_meta.model_parts`; ``modules``: the user modules it needs;
        ``source`` names the directory in errors)."""
        return cls(**model_parts(meta, tensors, modules, source))

    def save(self, directory: str | Path) -> Path:
        """Write the model directory (safetensors + JSON, never a pickle; see :mod:`polytask.io`)."""
        return save_model_files(directory, *self.to_files())

    @classmethod
    def load(cls, directory: str | Path, **modules: Any) -> "FittedModel":
        return load_model(directory, **modules)


def check_finite_outputs(task: str, *outputs: np.ndarray) -> None:
    """Refuse non-finite predictions (of a diverged or damaged model): one line naming the task
    and in how many rows (``outputs``: arrays with a row per data row; labels are skipped)."""
    rows = len(outputs[0])
    bad = np.zeros(rows, dtype=bool)
    for out in outputs:
        if np.issubdtype(out.dtype, np.floating):
            bad |= ~np.isfinite(out.reshape(rows, -1)).all(axis=1)
    if bad.any():
        raise PolytaskError(f"the prediction for task '{task}' is not finite (NaN or infinite) in {int(bad.sum())} of "
                            f"{rows} rows: the model is damaged or diverged in training")


def load_model(directory: str | Path, **modules: Any) -> FittedModel:
    """Load a model directory; ``modules`` supply the user modules JSON cannot hold
    (``trunk_module=``, ``head_module=``, ``expert_module=``: the builders it was made with)."""
    meta, tensors = read_model_files(directory)
    return FittedModel.from_files(meta, tensors, modules, f"model directory '{directory}'")
