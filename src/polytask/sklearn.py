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

import inspect
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data

from polytask.data.config import DataConfig
from polytask.data.prepare import prepare
from polytask.data.splits import split_indices
from polytask.data.targets import infer_kind
from polytask.errors import PolytaskError
from polytask.tasks import Task
from polytask.training.callbacks import ProgressCallback
from polytask.training.config import TrainConfig
from polytask.settings import declared_options, default_of
from polytask.workflow import NetworkSpec, train_model

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


#: The settings classes whose declared fields are the estimators' parameters.
_SETTINGS: tuple[type, ...] = (NetworkSpec, TrainConfig, DataConfig)
#: Parameters of the estimators that are not settings: per-column task weights and progress.
_OWN_PARAMETERS: tuple[tuple[str, Any], ...] = (("task_weights", None), ("verbose", False))


def _sklearn_default(value: Any) -> Any:
    """scikit-learn wants immutable defaults: an empty mapping is given as None."""
    return None if isinstance(value, dict) else value


def estimator_parameters() -> list[tuple[str, Any]]:
    """``(name, default)`` of every estimator parameter, generated from the settings
    declarations (:mod:`polytask.settings`) plus the estimators' own."""
    params = [
        (info.sklearn_name(f.name), _sklearn_default(default_of(f)))
        for cls in _SETTINGS for f, info in declared_options(cls) if info.in_sklearn
    ]
    return params + list(_OWN_PARAMETERS)


def _generated_init() -> Any:
    """An ``__init__`` that stores each parameter (the estimator contract: nothing else), with a
    real signature so ``get_params``, ``clone`` and ``GridSearchCV`` see every parameter."""
    params = estimator_parameters()
    names = {name for name, _ in params}

    def __init__(self: Any, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument '{unknown[0]}'")
        for name, default in params:
            setattr(self, name, kwargs.get(name, default))

    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [self_param] + [inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=d) for n, d in params])
    return __init__


class _MultiTaskEstimator(BaseEstimator):
    """Shared parameters and the fit/predict plumbing of both estimators.

    The parameters are the declared settings of :class:`~polytask.NetworkSpec` (``arch``,
    ``trunk``, ``head_hidden``, ``activation``, ``dropout``, ``norm``, ``arch_options``),
    :class:`~polytask.TrainConfig` (``epochs``, ``batch_size``, ``optimizer``, ``lr``, ...,
    ``balancer``, ``balancer_options``, ``random_state``) and :class:`~polytask.DataConfig`
    (``validation_fraction``, ``missing``, ``standardize_inputs``, ``standardize_targets``), with the same defaults, plus ``task_weights`` and
    ``verbose``.
    """

    _kind_of_main: str = "regression"

    __init__ = _generated_init()

    def _settings(self, cls: type, **overrides: Any) -> Any:
        """An instance of settings class ``cls`` from this estimator's parameters."""
        kwargs: dict[str, Any] = {}
        for f, info in declared_options(cls):
            if info.in_sklearn:
                value = getattr(self, info.sklearn_name(f.name))
                if info.kind == "mapping":
                    value = dict(value or {})
                elif info.kind == "widths":
                    value = tuple(value)
                kwargs[f.name] = value
        return cls(**{**kwargs, **overrides})

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
        """The training seed: an int ``random_state`` as it is, None as 0, a RandomState drawn from."""
        if self.random_state is None:
            return 0
        if isinstance(self.random_state, (int, np.integer)):
            return int(self.random_state)
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
        data = self._settings(DataConfig, features=tuple(f"x{j}" for j in range(x.shape[1])), val_fraction=val_fraction,
                              test_fraction=0.0)
        prepared = prepare(table, tasks, data, split=split)
        config = self._settings(TrainConfig, seed=seed)
        spec = self._settings(NetworkSpec)
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
