"""scikit-learn baselines on the same prepared split as the networks.

Each baseline produces *raw outputs* in the network's convention (standardized values for
regression, or their logit for a task with a sigmoid output; logits for classification), so the
very same ``task_metrics`` scores every candidate. Per-task baselines fit each task on its
labelled training rows only (a missing label is never imputed); a multilabel task fits one
model per label column. Hyperparameters
are chosen on the validation rows, never on the test rows:

- ``linear``: ridge regression (alpha in a grid) or L2 logistic regression (C in a grid);
- ``hgb``: histogram gradient boosting; the number of boosting iterations is picked by the
  validation loss along ``staged_predict`` (early stopping on our validation rows);
- ``mlp``: one multi-output ``MLPRegressor`` / ``MLPClassifier`` over every main task when the
  tasks allow it (all regression, or all binary/multilabel, with complete labels on the
  training and validation rows); otherwise (mixed kinds, a multiclass task, missing labels)
  one MLP of the same widths per task (per label column) on its labelled rows. The L2
  strength is chosen on validation.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier, MLPRegressor

from polytask.data.targets import TargetEncoder
from polytask.data.tensors import TaskTensors

RIDGE_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)
LOGISTIC_CS = (0.01, 0.1, 1.0, 10.0)
MLP_ALPHAS = (1e-4, 1e-2)
EPS = 1e-7


@dataclass
class Arrays:
    """One split as numpy: features, then per task its encoded targets and label mask."""

    x: np.ndarray
    targets: dict[str, np.ndarray]
    masks: dict[str, np.ndarray]

    @classmethod
    def of(cls, data: TaskTensors) -> "Arrays":
        return cls(
            data.x.reshape(len(data), -1).numpy().astype(np.float64),
            {k: v.numpy() for k, v in data.targets.items()},
            {k: v.numpy() for k, v in data.masks.items()},
        )


def selection_loss(kind: str, raw: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Validation loss used for model selection, in the network's training units: mean squared
    error on standardized targets, or the log-loss, over the observed labels."""
    if not mask.any():
        return float("nan")
    if kind == "regression":
        return float(((raw - target) ** 2)[mask].mean())
    if kind == "multiclass":
        z = raw - raw.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        rows = mask[:, 0]
        return float(-logp[rows, target[rows, 0].astype(int)].mean())
    p = np.clip(1.0 / (1.0 + np.exp(-raw)), EPS, 1 - EPS)
    ll = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    return float(ll[mask].mean())


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def _class_logits(proba: np.ndarray, fitted_classes: np.ndarray, n_classes: int) -> np.ndarray:
    """Log-probabilities over all ``n_classes`` of the encoder (classes unseen in training get
    probability ``EPS``)."""
    full = np.full((proba.shape[0], n_classes), EPS)
    full[:, fitted_classes.astype(int)] = np.maximum(proba, EPS)
    full /= full.sum(axis=1, keepdims=True)
    return np.log(full)


@dataclass
class ColumnProblem:
    """One output column of one task: what a per-task baseline fits."""

    kind: str  # "regression", "binary" (also each multilabel column) or "multiclass"
    n_classes: int
    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]


def _columns(enc: TargetEncoder, tr: Arrays, va: Arrays) -> Iterator[tuple[int, ColumnProblem]]:
    name, kind = enc.task.name, enc.task.kind
    for j in range(tr.targets[name].shape[1]):
        mt, mv = tr.masks[name][:, j], va.masks[name][:, j]
        col_kind = "binary" if kind == "multilabel" else kind
        n_classes = enc.output_dim if kind == "multiclass" else 2
        yield j, ColumnProblem(
            col_kind, n_classes,
            (tr.x[mt], tr.targets[name][mt, j]), (va.x[mv], va.targets[name][mv, j]),
        )


def _raw_column(kind: str, n_classes: int, model: Any, x: np.ndarray) -> np.ndarray:
    """Raw outputs (n, d) of a fitted scikit-learn model for one column."""
    if kind == "regression":
        return model.predict(x)[:, None]
    classes = np.asarray(model.classes_)
    proba = model.predict_proba(x)
    if kind == "multiclass":
        return _class_logits(proba, classes, n_classes)
    p1 = proba[:, list(classes).index(1)] if 1 in classes else np.zeros(len(x))
    return _logit(p1)[:, None]


class _Constant:
    """Predicts the training mean (regression) or the training class frequencies."""

    def __init__(self, kind: str, y: np.ndarray) -> None:
        self.kind = kind
        if kind == "regression":
            self.value = float(y.mean()) if y.size else 0.0
        else:
            self.classes_ = np.unique(y)
            self.freq = np.array([(y == c).mean() for c in self.classes_])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.full(len(x), self.value)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.tile(self.freq, (len(x), 1))


def _best_on_validation(col: ColumnProblem, models: Iterable[Any]) -> Any:
    """Fit each model on the column's labelled training rows and keep the one with the lowest
    validation loss (the first, when there are no validation rows)."""
    xt, yt = col.train
    xv, yv = col.val
    best, best_loss = None, np.inf
    for model in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(xt, yt.astype(int) if col.kind != "regression" else yt)
        if len(yv) == 0:
            return model
        raw = _raw_column(col.kind, col.n_classes, model, xv)
        loss = selection_loss(col.kind, raw, yv[:, None], np.ones((len(yv), 1), bool))
        if loss < best_loss:
            best, best_loss = model, loss
    return best


def _fit_linear(col: ColumnProblem, seed: int) -> Any:  # noqa: ARG001 (deterministic)
    if col.kind != "regression" and len(np.unique(col.train[1])) < 2:
        return _Constant(col.kind, col.train[1])
    if col.kind == "regression":
        return _best_on_validation(col, (Ridge(alpha=a) for a in RIDGE_ALPHAS))
    return _best_on_validation(col, (LogisticRegression(C=c, max_iter=500) for c in LOGISTIC_CS))


class _Staged:
    """A boosted model cut at the iteration with the lowest validation loss."""

    def __init__(self, model: Any, kind: str, n_iter: int) -> None:
        self.model, self.kind, self.n_iter = model, kind, n_iter
        if kind != "regression":
            self.classes_ = model.classes_

    def _stage(self, x: np.ndarray, fn: str) -> np.ndarray:
        out = None
        for i, out in enumerate(getattr(self.model, fn)(x), start=1):
            if i == self.n_iter:
                break
        assert out is not None
        return out

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._stage(x, "staged_predict")

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return self._stage(x, "staged_predict_proba")


def _fit_hgb(col: ColumnProblem, seed: int, max_iter: int = 200) -> Any:
    xt, yt = col.train
    xv, yv = col.val
    if col.kind != "regression" and len(np.unique(yt)) < 2:
        return _Constant(col.kind, yt)
    cls = HistGradientBoostingRegressor if col.kind == "regression" else HistGradientBoostingClassifier
    model = cls(max_iter=max_iter, learning_rate=0.1, early_stopping=False, random_state=seed)
    model.fit(xt, yt if col.kind == "regression" else yt.astype(int))
    if len(yv) == 0:
        return model
    fn = "staged_predict" if col.kind == "regression" else "staged_predict_proba"
    losses = []
    for stage in getattr(model, fn)(xv):
        if col.kind == "regression":
            raw = stage[:, None]
        elif col.kind == "multiclass":
            raw = _class_logits(stage, np.asarray(model.classes_), col.n_classes)
        else:
            raw = _logit(stage[:, list(model.classes_).index(1)])[:, None]
        losses.append(selection_loss(col.kind, raw, yv[:, None], np.ones((len(yv), 1), bool)))
    return _Staged(model, col.kind, int(np.argmin(losses)) + 1)


def _fit_mlp(col: ColumnProblem, seed: int, hidden: Sequence[int] = (64,), max_iter: int = 200) -> Any:
    """One scikit-learn MLP on a column's labelled rows, alpha in ``MLP_ALPHAS`` chosen on the
    validation loss."""
    if col.kind != "regression" and len(np.unique(col.train[1])) < 2:
        return _Constant(col.kind, col.train[1])
    cls = MLPRegressor if col.kind == "regression" else MLPClassifier
    return _best_on_validation(col, (cls(hidden_layer_sizes=tuple(hidden), alpha=a, max_iter=max_iter, random_state=seed)
                                     for a in MLP_ALPHAS))


PER_TASK_FITTERS: dict[str, Callable[..., Any]] = {"linear": _fit_linear, "hgb": _fit_hgb, "mlp": _fit_mlp}


def parameter_count(model: Any) -> int | None:
    """Fitted coefficients of a linear model or MLP; None for tree ensembles (not comparable)."""
    if isinstance(model, _Constant):
        return 1
    if hasattr(model, "coefs_"):
        return int(sum(c.size for c in model.coefs_) + sum(b.size for b in model.intercepts_))
    if hasattr(model, "coef_"):
        return int(np.size(model.coef_) + np.size(model.intercept_))
    return None


def per_task_outputs(
    name: str, encoders: Sequence[TargetEncoder], train: Arrays, val: Arrays, evaluate_on: Sequence[Arrays], seed: int,
    **options: Any,
) -> tuple[list[dict[str, np.ndarray]], int | None]:
    """Fit baseline ``name`` per task (and per label column); return, for each split in
    ``evaluate_on``, the raw outputs per task, and the total parameter count (None for trees)."""
    fitter = PER_TASK_FITTERS[name]
    outputs: list[dict[str, np.ndarray]] = [{} for _ in evaluate_on]
    counts: list[int | None] = []
    for enc in encoders:
        cols: list[list[np.ndarray]] = [[] for _ in evaluate_on]
        for _, col in _columns(enc, train, val):
            model = fitter(col, seed, **options)
            counts.append(parameter_count(model))
            for k, split in enumerate(evaluate_on):
                cols[k].append(_raw_column(col.kind, col.n_classes, model, split.x))
        for k in range(len(evaluate_on)):
            raw = np.concatenate(cols[k], axis=1)
            outputs[k][enc.task.name] = enc.unlink(raw) if enc.task.kind == "regression" else raw
    total = None if any(c is None for c in counts) else int(sum(c for c in counts if c is not None))
    return outputs, total


def mlp_unsupported_reason(encoders: Sequence[TargetEncoder], train: Arrays, val: Arrays) -> str | None:
    """Why one multi-output scikit-learn MLP cannot model these tasks, or None when it can."""
    kinds = {e.task.kind for e in encoders}
    if kinds == {"regression"}:
        pass
    elif kinds <= {"binary", "multilabel"}:
        pass
    else:
        return f"scikit-learn's multi-output MLP needs all-regression or all-binary/multilabel tasks, got {sorted(kinds)}"
    for e in encoders:
        for split in (train, val):
            if not split.masks[e.task.name].all():
                return f"task '{e.task.name}' has missing labels (multi-output MLP needs complete labels)"
    return None


def mlp_outputs(
    encoders: Sequence[TargetEncoder], train: Arrays, val: Arrays, evaluate_on: Sequence[Arrays],
    seed: int, hidden: Sequence[int], max_iter: int = 200,
) -> tuple[list[dict[str, np.ndarray]], int | None]:
    """One multi-output MLP over all tasks; alpha picked on the validation loss."""
    names = [e.task.name for e in encoders]
    widths = [train.targets[n].shape[1] for n in names]
    regression = encoders[0].task.kind == "regression"
    y_train = np.concatenate([train.targets[n] for n in names], axis=1)

    single = y_train.shape[1] == 1

    def raw(model: Any, x: np.ndarray) -> np.ndarray:
        if regression:
            return np.asarray(model.predict(x)).reshape(len(x), -1)
        proba = np.asarray(model.predict_proba(x))
        if single:  # one binary column: scikit-learn returns both class probabilities
            proba = proba[:, list(model.classes_).index(1)] if 1 in model.classes_ else np.zeros(len(x))
        return _logit(proba.reshape(len(x), -1))

    def loss(model: Any) -> float:
        r = raw(model, val.x)
        start, total = 0, 0.0
        for n, w in zip(names, widths):
            kind = "regression" if regression else "binary"
            total += selection_loss(kind, r[:, start : start + w], val.targets[n], val.masks[n])
            start += w
        return total

    best, best_loss = None, np.inf
    for alpha in MLP_ALPHAS:
        cls = MLPRegressor if regression else MLPClassifier
        model = cls(hidden_layer_sizes=tuple(hidden), alpha=alpha, max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            y = y_train if regression else y_train.astype(int)
            model.fit(train.x, y.ravel() if single else y)
        current = loss(model) if len(val.x) else 0.0
        if current < best_loss:
            best, best_loss = model, current
    outputs: list[dict[str, np.ndarray]] = []
    assert best is not None
    for split in evaluate_on:
        r = raw(best, split.x)
        out, start = {}, 0
        for enc, n, w in zip(encoders, names, widths):
            out[n] = enc.unlink(r[:, start : start + w]) if regression else r[:, start : start + w]
            start += w
        outputs.append(out)
    return outputs, parameter_count(best)


def mlp_baseline_outputs(
    encoders: Sequence[TargetEncoder], train: Arrays, val: Arrays, evaluate_on: Sequence[Arrays],
    seed: int, hidden: Sequence[int], max_iter: int = 200,
) -> tuple[list[dict[str, np.ndarray]], int | None]:
    """The ``mlp`` baseline: one multi-output MLP where the tasks allow it
    (:func:`mlp_unsupported_reason`), else one MLP per task on its labelled rows."""
    if mlp_unsupported_reason(encoders, train, val) is None:
        return mlp_outputs(encoders, train, val, evaluate_on, seed, hidden, max_iter)
    return per_task_outputs("mlp", encoders, train, val, evaluate_on, seed, hidden=tuple(hidden), max_iter=max_iter)
