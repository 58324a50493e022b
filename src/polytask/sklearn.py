"""scikit-learn estimators: a multi-task network behind the estimator contract.

``MultiTaskRegressor`` and ``MultiTaskClassifier`` train one shared-trunk network on every
column of a 2-D ``Y`` (each column a task), where NaN (or None) marks a missing label that is
masked out of that task's loss, never imputed. Auxiliary targets, trained as extra outputs and
never predicted, are passed to ``fit`` as ``aux=`` (an array or DataFrame with one row per
sample), so ``predict`` and ``score`` only ever see the main tasks and the estimators drop into
``Pipeline``, ``GridSearchCV`` (which slices ``aux`` per fold) and ``clone`` unchanged.

The constructor only stores parameters; ``fit`` returns ``self`` and sets the fitted attributes
(ending in ``_``): ``model_`` (a :class:`~polytask.fitted.FittedModel`), ``task_names_``,
``n_features_in_`` (and ``feature_names_in_`` for DataFrames), plus ``classes_`` for the
classifier.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from polytask.data.splits import split_indices
from polytask.data.targets import infer_kind
from polytask.errors import PolytaskError
from polytask.tasks import Task
from polytask.training.callbacks import ProgressCallback
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, prepare, train_model

ArrayLike = Any


def _as_target_frame(values: ArrayLike, prefix: str) -> tuple[pd.DataFrame, bool]:
    """Targets as a DataFrame with user-facing column names, and whether they came as 1-D."""
    if isinstance(values, pd.Series):
        return values.to_frame(name=str(values.name) if values.name is not None else f"{prefix}0"), True
    if isinstance(values, pd.DataFrame):
        frame = values.copy()
        frame.columns = [str(c) for c in frame.columns]
        return frame.reset_index(drop=True), False
    arr = np.asarray(values)
    if arr.ndim == 1:
        return pd.DataFrame({f"{prefix}0": arr}), True
    if arr.ndim != 2:
        raise PolytaskError(f"targets must be 1-D or 2-D, got shape {arr.shape}")
    return pd.DataFrame({f"{prefix}{j}": arr[:, j] for j in range(arr.shape[1])}), False


class _MultiTaskEstimator(BaseEstimator):
    """Shared parameters and the fit/predict plumbing of both estimators."""

    _kind_of_main: str = "regression"

    def __init__(
        self,
        *,
        trunk: Sequence[int] = (64, 64),
        head_hidden: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
        norm: str = "none",
        arch: str = "hps",
        arch_options: dict[str, Any] | None = None,
        epochs: int = 100,
        batch_size: int = 64,
        optimizer: str = "adam",
        lr: float = 1e-3,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        early_stopping: str = "per_task",
        patience: int = 20,
        validation_fraction: float = 0.15,
        balancer: str = "ew",
        balancer_options: dict[str, Any] | None = None,
        task_weights: Sequence[float] | None = None,
        missing: str = "impute",
        random_state: int | np.random.RandomState | None = None,
        device: str = "cpu",
        verbose: bool = False,
    ) -> None:
        self.trunk = trunk
        self.head_hidden = head_hidden
        self.activation = activation
        self.dropout = dropout
        self.norm = norm
        self.arch = arch
        self.arch_options = arch_options
        self.epochs = epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr = lr
        self.l2 = l2
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.balancer = balancer
        self.balancer_options = balancer_options
        self.task_weights = task_weights
        self.missing = missing
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.allow_nan = self.missing == "impute"
        return tags

    # -- what each estimator decides (``_main_kind(column, name)`` -> task kind) ------------
    def _after_fit(self, targets: pd.DataFrame) -> None:
        """Set estimator-specific fitted attributes."""

    # -- fitting -----------------------------------------------------------------------------
    def _seed(self) -> int:
        if self.random_state is None:
            return 0
        return int(check_random_state(self.random_state).randint(0, 2**31 - 1))

    def fit(self, X: ArrayLike, y: ArrayLike, aux: ArrayLike | None = None) -> "_MultiTaskEstimator":
        """Train on features ``X`` (n, p) and targets ``y`` (n,) or (n, T), NaN = missing label.

        ``aux``: auxiliary targets (n, k), trained as extra outputs and never predicted.
        """
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        nan_policy = "allow-nan" if self.missing == "impute" else True
        x = validate_data(self, X, reset=True, dtype=np.float64, ensure_all_finite=nan_policy)
        n = x.shape[0]
        targets, one_d = _as_target_frame(y, "y")
        if len(targets) != n:
            raise ValueError(f"X has {n} samples but y has {len(targets)}")
        if n < 2:
            raise ValueError(f"n_samples = {n}: at least 2 samples are needed to fit")
        aux_frame = None
        if aux is not None:
            aux_frame, _ = _as_target_frame(aux, "aux")
            if len(aux_frame) != n:
                raise ValueError(f"X has {n} samples but aux has {len(aux_frame)}")
            clash = set(aux_frame.columns) & set(targets.columns)
            if clash:
                raise PolytaskError(f"auxiliary target '{sorted(clash)[0]}' has the name of a main target")
        weights = list(self.task_weights) if self.task_weights is not None else [1.0] * targets.shape[1]
        if len(weights) != targets.shape[1]:
            raise PolytaskError(f"task_weights has {len(weights)} values for {targets.shape[1]} targets")

        table = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])
        tasks: list[Task] = []
        for j, name in enumerate(targets.columns):
            col = f"__y{j}"
            table[col] = targets[name].to_numpy()
            kind = self._main_kind(targets[name], name)  # type: ignore[attr-defined]
            tasks.append(Task(name=name, kind=kind, columns=(col,), weight=float(weights[j])))
        for j, name in enumerate(aux_frame.columns if aux_frame is not None else []):
            col = f"__aux{j}"
            table[col] = aux_frame[name].to_numpy()  # type: ignore[index]
            tasks.append(Task(name=name, kind=infer_kind(table[col]), columns=(col,), auxiliary=True))  # type: ignore[arg-type]

        seed = self._seed()
        val_fraction = float(self.validation_fraction)
        if int(round(val_fraction * n)) == 0 or n - int(round(val_fraction * n)) < 2:
            val_fraction = 0.0  # too few rows to hold any out: train on all, keep the last epoch
        split = split_indices(n, val_fraction, 0.0, seed)
        prepared = prepare(table, tasks=tasks, features=[f"x{j}" for j in range(x.shape[1])], split=split, missing=self.missing)  # type: ignore[arg-type]
        config = TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer,  # type: ignore[arg-type]
            lr=self.lr, l2=self.l2, weight_decay=self.weight_decay, early_stopping=self.early_stopping,  # type: ignore[arg-type]
            patience=self.patience, seed=seed, device=self.device, balancer=self.balancer,
            balancer_options=dict(self.balancer_options or {}),
        )
        spec = NetworkSpec(
            arch=self.arch, trunk=tuple(self.trunk), head_hidden=tuple(self.head_hidden),
            activation=self.activation, dropout=self.dropout, norm=self.norm, options=dict(self.arch_options or {}),
        )
        callbacks = [ProgressCallback(type(self).__name__)] if self.verbose else []
        self.model_ = train_model(prepared, spec, config, callbacks=callbacks)
        self.task_names_ = [str(c) for c in targets.columns]
        self.aux_names_ = [str(c) for c in aux_frame.columns] if aux_frame is not None else []
        self.one_d_ = one_d
        self._after_fit(targets)
        return self

    # -- prediction --------------------------------------------------------------------------
    def _decoded(self, X: ArrayLike) -> dict[str, dict[str, np.ndarray]]:
        check_is_fitted(self, "model_")
        nan_policy = "allow-nan" if self.missing == "impute" else True
        x = validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite=nan_policy)
        frame = pd.DataFrame(x, columns=[f"x{j}" for j in range(x.shape[1])])
        return self.model_.predict_outputs(frame)

    def _observed(self, y: ArrayLike) -> pd.DataFrame:
        targets, _ = _as_target_frame(y, "y")
        if targets.shape[1] != len(self.task_names_):
            raise ValueError(f"y has {targets.shape[1]} columns but the model was fit on {len(self.task_names_)}")
        return targets


class MultiTaskRegressor(RegressorMixin, _MultiTaskEstimator):
    """A multi-task network regressing every column of ``Y`` jointly (hard parameter sharing
    by default: ``z = trunk(x)``, ``y_t = head_t(z)``, loss ``sum_t alpha_t MSE_t`` over the
    observed labels of each task).

    ``predict`` returns (n,) for a 1-D ``y`` and (n, T) otherwise; ``score`` is the mean over
    tasks of R^2 on each task's observed labels (plain ``r2_score`` for one complete target).
    """

    def _main_kind(self, column: pd.Series, name: str) -> str:
        numeric = pd.to_numeric(column, errors="coerce")
        bad = numeric.isna() & column.notna()
        if bad.any():
            raise PolytaskError(f"regression target '{name}' holds non-numeric value '{column[bad].iloc[0]}'")
        return "regression"

    def predict(self, X: ArrayLike) -> np.ndarray:
        decoded = self._decoded(X)
        out = np.column_stack([decoded[name]["value"][:, 0] for name in self.task_names_])
        return out[:, 0] if self.one_d_ else out

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        from sklearn.metrics import r2_score

        targets = self._observed(y)
        pred = self.predict(X).reshape(len(targets), -1)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        scores = []
        for j, name in enumerate(targets.columns):
            truth = pd.to_numeric(targets[name], errors="coerce").to_numpy(dtype=float)
            seen = ~np.isnan(truth)
            scores.append(r2_score(truth[seen], pred[seen, j], sample_weight=None if w is None else w[seen]))
        return float(np.mean(scores))


class MultiTaskClassifier(ClassifierMixin, _MultiTaskEstimator):
    """A multi-task network classifying every column of ``Y`` jointly; each column is a binary
    or multiclass task (0/1 columns make a multilabel problem), trained with (binary)
    cross-entropy over each task's observed labels.

    ``classes_`` is one array of labels per task (a single array for a 1-D ``y``);
    ``predict_proba`` returns one (n, n_classes) array per task (a single array for a 1-D ``y``);
    ``score`` is the mean over tasks of the accuracy on each task's observed labels.
    """

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _main_kind(self, column: pd.Series, name: str) -> str:
        from sklearn.utils.multiclass import type_of_target

        observed = column[column.notna()]
        if type_of_target(observed.to_numpy()) == "continuous":
            raise ValueError(f"Unknown label type: target '{name}' is continuous; use MultiTaskRegressor")
        n_classes = observed.astype(str).nunique()
        if n_classes < 2:
            raise PolytaskError(
                f"classification task '{name}' has only one class"
                + (f" '{observed.iloc[0]}'" if len(observed) else "")
                + "; a classifier needs at least 2 classes"
            )
        return "binary" if n_classes == 2 else "multiclass"

    def _after_fit(self, targets: pd.DataFrame) -> None:
        classes = []
        for name in targets.columns:
            observed = targets[name][targets[name].notna()].to_numpy()
            try:
                labels = np.unique(observed)
            except TypeError:  # mixed types: order as the target encoder does, by text
                labels = np.asarray(sorted(set(observed.tolist()), key=str), dtype=object)
            classes.append(labels)
        self.classes_: np.ndarray | list[np.ndarray] = classes[0] if self.one_d_ else classes

    def _task_classes(self) -> list[np.ndarray]:
        return [self.classes_] if self.one_d_ else list(self.classes_)  # type: ignore[list-item]

    def predict_proba(self, X: ArrayLike) -> np.ndarray | list[np.ndarray]:
        decoded = self._decoded(X)
        probas = [decoded[name]["proba"] for name in self.task_names_]
        return probas[0] if self.one_d_ else probas

    def predict(self, X: ArrayLike) -> np.ndarray:
        decoded = self._decoded(X)
        columns = [
            classes[decoded[name]["proba"].argmax(axis=1)]
            for name, classes in zip(self.task_names_, self._task_classes())
        ]
        return columns[0] if self.one_d_ else np.column_stack(columns)

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        from sklearn.metrics import accuracy_score

        targets = self._observed(y)
        pred = np.asarray(self.predict(X)).reshape(len(targets), -1)
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
        scores = []
        for j, name in enumerate(targets.columns):
            seen = targets[name].notna().to_numpy()
            truth = targets[name].to_numpy()[seen]
            scores.append(accuracy_score(truth.astype(str), pred[seen, j].astype(str), sample_weight=None if w is None else w[seen]))
        return float(np.mean(scores))


__all__ = ["MultiTaskClassifier", "MultiTaskRegressor"]
