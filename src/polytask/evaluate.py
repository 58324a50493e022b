"""Per-task metrics (on observed labels only; scikit-learn's definitions, computed with numpy for
regression) and delta against STL.

Regression: RMSE, MAE, R^2 (averaged over columns for a vector target), in original units.
Binary and multiclass: log-loss, accuracy, ROC-AUC (one-vs-rest for multiclass), F1 (macro for
multiclass). Multilabel: log-loss, micro and macro F1, macro ROC-AUC over the labels that have
both classes. A metric that is undefined on the data (AUC with one class present) is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
from sklearn import metrics as skm

from polytask.data.targets import TargetEncoder

if TYPE_CHECKING:
    from polytask.losses import OutputLayout

#: Metrics for which a larger value is better; all others are better when smaller.
HIGHER_IS_BETTER: frozenset[str] = frozenset(
    {"accuracy", "roc_auc", "f1", "r2", "micro_f1", "macro_f1", "auc"}
)


def _safe(fn, *args, **kwargs) -> float:  # type: ignore[no-untyped-def]
    try:
        return float(fn(*args, **kwargs))
    except ValueError:
        return float("nan")


def task_metrics(
    encoder: TargetEncoder, output: np.ndarray, target: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """Metrics of one task over the rows whose label is observed.

    ``output`` is the raw network output (n, d); ``target`` and ``mask`` are as encoded by
    ``encoder``. Returns NaN for every metric when no label is observed.
    """
    names = encoder.task.metric_names
    if not mask.any():
        return {m: float("nan") for m in names}
    kind = encoder.task.kind
    if kind == "regression":
        return _regression_metrics(encoder, output, target, mask, names)
    proba = encoder.decode(output)["proba"]
    if kind in ("binary", "multiclass"):
        rows = mask[:, 0]
        return _class_metrics(kind, target[rows, 0].astype(int), proba[rows], names)
    return _multilabel_metrics(target.astype(int), proba, mask, names)


def metrics_by_task(encoders: Sequence[TargetEncoder], outputs: Mapping[str, np.ndarray],
                    targets: Mapping[str, np.ndarray], masks: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """:func:`task_metrics` of every encoder's task, in the encoders' order (one
    :class:`TaskScorer` call)."""
    return TaskScorer(encoders, targets, masks)(outputs)


class TaskScorer:
    """Every encoder's :func:`task_metrics` on one labelled set, for outputs given call by call
    (the trainer scores the same validation rows each epoch).

    Scalar regression tasks are scored together (:class:`_ScalarRegression`: masked reductions
    over an ``(n, k)`` matrix instead of ``3 k`` small ones, with the targets' sums made once, at
    construction); the others one by one. That is what keeps per-epoch validation metrics cheap
    at many tasks."""

    def __init__(self, encoders: Sequence[TargetEncoder], targets: Mapping[str, np.ndarray],
                 masks: Mapping[str, np.ndarray]) -> None:
        self.encoders = list(encoders)
        self.targets = {e.task.name: np.asarray(targets[e.task.name]) for e in self.encoders}
        self.masks = {e.task.name: np.asarray(masks[e.task.name]) for e in self.encoders}
        scalar = [e for e in self.encoders if e.task.kind == "regression" and self.targets[e.task.name].shape[1] == 1
                  and set(e.task.metric_names) <= set(_REGRESSION)]
        self._together = _ScalarRegression(scalar, self.targets, self.masks) if len(scalar) > 1 else None
        self._block: tuple[OutputLayout, slice | list[int]] | None = None  # their columns in the last packed layout

    def __call__(self, outputs: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
        together = self._together(outputs) if self._together is not None else {}
        return self._with_the_rest(together, outputs)

    def packed(self, outputs: np.ndarray, layout: OutputLayout) -> dict[str, dict[str, float]]:
        """The call on ``layout.split(outputs)`` for packed ``(n, H)`` outputs, with the scalar
        regression tasks' columns taken from ``outputs`` as one block (a view when they sit side
        by side in ``layout``, as the trainer's packed heads put them)."""
        together = {}
        if self._together is not None:
            if self._block is None or self._block[0] is not layout:
                self._block = (layout, _block_of(layout, [e.task.name for e in self._together.encoders]))
            together = self._together.score(outputs[:, self._block[1]])
        return self._with_the_rest(together, layout.split(outputs))

    def _with_the_rest(self, together: dict[str, dict[str, float]], outputs: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
        """Every encoder's metrics in the encoders' order: ``together``'s, else scored alone."""
        return {e.task.name: together.get(e.task.name) or task_metrics(
            e, np.asarray(outputs[e.task.name]), self.targets[e.task.name], self.masks[e.task.name])
            for e in self.encoders}


def _block_of(layout: OutputLayout, names: Sequence[str]) -> slice | list[int]:
    """The columns of one-column tasks ``names`` in ``layout``: a slice when consecutive."""
    where = dict(zip(layout.names, layout.starts))
    columns = [where[n] for n in names]
    first = columns[0]
    return slice(first, first + len(columns)) if columns == list(range(first, first + len(columns))) else columns


class _ScalarRegression:
    """RMSE, MAE and R^2 of k one-column regression tasks at once, on each column's observed
    rows, from the encoded values: with ``d = m (link(r) - y)`` in encoded units (``r`` the raw
    output, ``y`` the encoded target, ``m`` the mask), ``n_j = sum_i m_ij`` and ``sigma_j`` the
    target's scale, ``RMSE_j = sigma_j sqrt(sum_i d_ij^2 / n_j)``, ``MAE_j = sigma_j sum_i |d_ij| / n_j``
    and ``R^2_j = 1 - sum_i d_ij^2 / SS_j`` with ``SS_j = sum_i m_ij (y_ij - c_j)^2 - (sum_i m_ij (y_ij - c_j))^2 / n_j``
    (``c_j`` a shift near the mean, for accuracy): the values of :func:`_regression_metrics` in
    the target's own units, up to rounding. ``n_j`` and ``SS_j`` depend on the labels only and
    are made once. The ``(n, k)`` matrices are read in blocks of about :data:`_METRIC_CELLS`
    cells, row by row (views when the tasks' columns sit side by side, as a packed output
    does), so memory is read in order and float64 temporaries stay small."""

    def __init__(self, encoders: Sequence[TargetEncoder], targets: Mapping[str, np.ndarray],
                 masks: Mapping[str, np.ndarray]) -> None:
        self.encoders = list(encoders)
        self.y, self.seen = (_columns([d[e.task.name] for e in self.encoders]) for d in (targets, masks))
        n, k = self.y.shape
        self.step = max(1, _METRIC_CELLS // k)
        self.all_seen = bool(self.seen.all())
        self.sigmoid = [j for j, e in enumerate(self.encoders) if e.task.output == "sigmoid"]
        self.scale = np.array([e.std_[0] for e in self.encoders], dtype=np.float64)
        self.shift = np.zeros(k)
        sums = np.zeros((3, k))  # n_j, sum m (y - c), sum m (y - c)^2
        for first, y, unseen in self._blocks():
            if first == 0:
                with np.errstate(invalid="ignore"):
                    self.shift = np.nan_to_num(np.where(unseen, np.nan, y).mean(0) if len(y) else self.shift)
            y -= self.shift
            np.copyto(y, 0.0, where=unseen)
            sums += [len(y) - unseen.sum(0), y.sum(0), np.einsum("ij,ij->j", y, y)]
        self.count, y_sum, yy_sum = sums
        with np.errstate(divide="ignore", invalid="ignore"):
            self.ss_tot = np.maximum(yy_sum - y_sum * y_sum / self.count, 0.0)

    def _blocks(self) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """(first row, float64 copy of the targets, unseen mask) of each block of rows."""
        for first in range(0, self.y.shape[0], self.step):
            rows = slice(first, first + self.step)
            yield first, np.array(self.y[rows], dtype=np.float64, order="C"), ~np.asarray(self.seen[rows], dtype=bool)

    def __call__(self, outputs: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
        return self.score(_columns([np.asarray(outputs[e.task.name]) for e in self.encoders]))

    def score(self, out: np.ndarray) -> dict[str, dict[str, float]]:
        """The metrics from the ``(n, k)`` raw outputs, columns in the encoders' order."""
        sums = np.zeros((2, len(self.encoders)))  # sum |d|, sum d^2
        for first in range(0, out.shape[0], self.step):
            rows = slice(first, first + self.step)
            error = np.array(out[rows], dtype=np.float64, order="C")  # the sums' order whatever the input's layout
            for j in self.sigmoid:
                error[:, j] = self.encoders[j].link(error[:, j])
            error -= self.y[rows]
            if not self.all_seen:
                np.copyto(error, 0.0, where=~np.asarray(self.seen[rows], dtype=bool))
            sums[1] += np.einsum("ij,ij->j", error, error)
            sums[0] += np.abs(error, out=error).sum(0)
        abs_sum, ss_res = sums
        count, ss_tot, scale = self.count, self.ss_tot, self.scale
        with np.errstate(divide="ignore", invalid="ignore"):
            arrays = {"rmse": scale * np.sqrt(ss_res / count), "mae": abs_sum * scale / count,
                      "r2": np.where(count < 2, np.nan, np.where(ss_tot == 0, (ss_res == 0).astype(float), 1.0 - ss_res / ss_tot))}
        values = {m: np.where(count > 0, a, np.nan).tolist() for m, a in arrays.items()}  # Python floats, all at once
        return {e.task.name: {m: values[m][j] for m in e.task.metric_names} for j, e in enumerate(self.encoders)}


def _columns(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The ``(n, k)`` matrix of k ``(n, 1)`` arrays: a read-only view when they are consecutive
    columns of one row-major array (no copy), else a copy."""
    first = arrays[0]
    step = first.itemsize
    address = first.__array_interface__["data"][0]
    side_by_side = first.ndim == 2 and first.strides[0] >= len(arrays) * step and all(
        a.shape == first.shape and a.dtype == first.dtype and a.strides == first.strides
        and a.__array_interface__["data"][0] == address + j * step for j, a in enumerate(arrays))
    if side_by_side and first.shape[1] == 1:
        return np.lib.stride_tricks.as_strided(first, (first.shape[0], len(arrays)), (first.strides[0], step),
                                               writeable=False)
    return np.concatenate([a.reshape(len(a), -1)[:, :1] for a in arrays], axis=1)


#: Cells (rows x tasks) scored together by :func:`_scalar_regression_metrics`.
_METRIC_CELLS = 1 << 18
_REGRESSION = ("rmse", "mae", "r2")


def _regression_metrics(encoder: TargetEncoder, output: np.ndarray, target: np.ndarray, mask: np.ndarray,
                        names: tuple[str, ...]) -> dict[str, float]:
    """RMSE, MAE and R^2 in the target's own units, averaged over its columns."""
    pred = encoder.decode(output)["value"]
    true = target * np.asarray(encoder.std_) + np.asarray(encoder.mean_)
    cols = [(true[mask[:, j], j].astype(np.float64), pred[mask[:, j], j].astype(np.float64))
            for j in range(true.shape[1]) if mask[:, j].any()]
    fns = {"rmse": lambda y, p: math.sqrt(float(np.mean((y - p) ** 2))), "mae": lambda y, p: float(np.mean(np.abs(y - p))),
           "r2": _r2}
    return {m: float(np.mean([fns[m](y, p) for y, p in cols])) for m in names}


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    """``1 - SS_res / SS_tot`` as scikit-learn's ``r2_score`` defines it (1 for a perfect fit of
    a constant target, 0 for an imperfect one; NaN for one row), in numpy: the trainer computes
    it every epoch, and the argument checks of the scikit-learn call cost more than the sums."""
    if len(y) < 2:
        return float("nan")
    ss_res = float(np.sum((y - p) ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def _class_metrics(kind: str, y: np.ndarray, p: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Accuracy, log loss, F1 (binary, or macro over classes) and ROC AUC (one-vs-rest for
    several classes; NaN when a class is absent)."""
    labels = list(range(p.shape[1]))
    y_hat = p.argmax(axis=1)
    out: dict[str, float] = {}
    for m in names:
        if m == "accuracy":
            out[m] = float(skm.accuracy_score(y, y_hat))
        elif m == "log_loss":
            out[m] = _safe(skm.log_loss, y, p, labels=labels)
        elif m == "f1":
            avg = "binary" if kind == "binary" else "macro"
            out[m] = float(skm.f1_score(y, y_hat, average=avg, labels=labels if avg == "macro" else None, zero_division=0))
        elif m == "roc_auc":
            if len(np.unique(y)) < 2 or (kind == "multiclass" and len(np.unique(y)) < p.shape[1]):
                out[m] = float("nan")
            elif kind == "binary":
                out[m] = _safe(skm.roc_auc_score, y, p[:, 1])
            else:
                out[m] = _safe(skm.roc_auc_score, y, p, multi_class="ovr", labels=labels)
    return out


def _multilabel_metrics(y: np.ndarray, proba: np.ndarray, mask: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Log loss, micro and macro F1 and mean AUC over every observed (row, label) entry."""
    y_hat = (proba >= 0.5).astype(int)
    out: dict[str, float] = {}
    for m in names:
        if m == "log_loss":
            pp = np.clip(proba, 1e-12, 1 - 1e-12)
            out[m] = float((-(y * np.log(pp) + (1 - y) * np.log(1 - pp)))[mask].mean())
        elif m in ("micro_f1", "macro_f1"):
            if mask.all():
                out[m] = float(skm.f1_score(y, y_hat, average=m.split("_")[0], zero_division=0))
            elif m == "micro_f1":
                out[m] = float(skm.f1_score(y[mask], y_hat[mask], zero_division=0))
            else:
                out[m] = float(np.mean([skm.f1_score(y[mask[:, j], j], y_hat[mask[:, j], j], zero_division=0)
                                        for j in range(y.shape[1]) if mask[:, j].any()]))
        elif m == "auc":
            aucs = [skm.roc_auc_score(y[mask[:, j], j], proba[mask[:, j], j])
                    for j in range(y.shape[1]) if len(np.unique(y[mask[:, j], j])) == 2]
            out[m] = float(np.mean(aucs)) if aucs else float("nan")
    return out


def relative_delta(metric: str, value: float, baseline: float) -> float:
    """Signed relative improvement of ``value`` over ``baseline`` (positive is better):
    ``(-1)^{s} (M - M_b) / |M_b|`` with ``s = 0`` when higher is better and ``s = 1`` otherwise."""
    if baseline == 0 or math.isnan(baseline) or math.isnan(value):
        return float("nan")
    sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
    return sign * (value - baseline) / abs(baseline)


def delta_m(
    results: Mapping[str, Mapping[str, float]],
    baseline: Mapping[str, Mapping[str, float]],
    metric: Mapping[str, str] | None = None,
) -> float:
    """Delta-m (Maninis et al. 2019, "Attentive single-tasking of multiple tasks"):
    ``mean_t (-1)^{s_t} (M_t - M_t,base) / |M_t,base|`` over the tasks both report, with ``M_t``
    the task's headline metric (``metric[t]`` when given, else the first it reports: RMSE for
    regression, ROC-AUC for binary, accuracy for multiclass) and ``s_t = 1`` when lower is
    better. One metric per task, so a task with many metrics does not weigh more. The one
    definition used by ``fit --stl``, ``compare`` and ``group``."""
    deltas = []
    for task, ms in results.items():
        if task not in baseline or not ms:
            continue
        name = (metric or {}).get(task) or next(iter(ms))
        if name not in ms or name not in baseline[task]:
            continue
        d = relative_delta(name, float(ms[name]), float(baseline[task][name]))
        if not math.isnan(d):
            deltas.append(d)
    return float(np.mean(deltas)) if deltas else float("nan")
