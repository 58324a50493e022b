"""Teacher labels (sequential transfer, Caruana 1997): a previously trained model labels rows,
possibly unlabelled ones, and its outputs become auxiliary targets of a new model.

The teacher is a polytask :class:`~polytask.fitted.FittedModel` (its main tasks' predictions:
values for regression, class probabilities for classification) or any scikit-learn-compatible
estimator (``predict_proba`` when it has one, else ``predict``). Probabilities are added as
regression targets in [0, 1] (soft labels); values as regression targets. Columns are named
``<prefix><output>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from polytask.auxiliary.columns import AuxiliaryColumns
from polytask.errors import PolytaskError


def _teacher_outputs(teacher: Any, frame: pd.DataFrame, features: Sequence[str] | None) -> dict[str, np.ndarray]:
    from polytask.fitted import FittedModel

    if isinstance(teacher, FittedModel):
        out: dict[str, np.ndarray] = {}
        decoded = teacher.predict_outputs(frame)
        for enc in teacher.encoders:
            task = enc.task
            if task.name not in decoded:
                continue  # auxiliary tasks of the teacher are not outputs
            d = decoded[task.name]
            if task.kind == "regression":
                for j, col in enumerate(task.columns):
                    out[col if len(task.columns) > 1 else task.name] = np.asarray(d["value"][:, j], dtype=float)
            elif task.kind == "multilabel":
                for j, col in enumerate(task.columns):
                    out[f"{col}:proba"] = np.asarray(d["proba"][:, j], dtype=float)
            else:
                proba = np.asarray(d["proba"], dtype=float)
                for j, cls in enumerate(enc.classes_):
                    out[f"{task.name}:proba_{cls}"] = proba[:, j]
        return out
    if not hasattr(teacher, "predict"):
        raise PolytaskError(f"teacher {type(teacher).__name__} has no predict method")
    if features is None:
        names = getattr(teacher, "feature_names_in_", None)
        if names is None:
            raise PolytaskError("pass features=[...]: the teacher does not record its feature names")
        features = list(names)
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise PolytaskError(f"feature column '{absent[0]}' the teacher needs is not in the data")
    x = frame[list(features)]
    if getattr(teacher, "feature_names_in_", None) is None:
        x = x.to_numpy()  # a teacher fitted on an array gets an array
    if hasattr(teacher, "predict_proba"):
        proba = np.asarray(teacher.predict_proba(x), dtype=float)
        classes = list(getattr(teacher, "classes_", range(proba.shape[1])))
        if proba.ndim == 2 and proba.shape[1] == 2:
            return {f"proba_{classes[1]}": proba[:, 1]}
        return {f"proba_{c}": proba[:, j] for j, c in enumerate(classes)}
    pred = np.asarray(teacher.predict(x), dtype=float)
    if pred.ndim == 1:
        return {"value": pred}
    return {f"value{j}": pred[:, j] for j in range(pred.shape[1])}


def teacher_labels(
    teacher: Any,
    frame: pd.DataFrame,
    features: Sequence[str] | None = None,
    prefix: str = "teacher:",
) -> AuxiliaryColumns:
    """``frame`` plus the teacher's outputs on every row as auxiliary regression columns.

    ``features`` are the columns a scikit-learn teacher reads (default: its
    ``feature_names_in_``); a polytask teacher knows its own.
    """
    outputs = _teacher_outputs(teacher, frame, features)
    out = frame.copy()
    aux: list[str] = []
    for key, values in outputs.items():
        name = f"{prefix}{key}"
        if name in frame.columns:
            raise PolytaskError(f"column '{name}' already exists; choose another prefix")
        if not np.all(np.isfinite(values)):
            raise PolytaskError(f"teacher output '{key}' has non-finite values")
        out[name] = values
        aux.append(name)
    return AuxiliaryColumns(frame=out, aux=aux, kinds={a: "regression" for a in aux})
