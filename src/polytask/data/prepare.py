"""From a table and its tasks to a problem ready to train: tasks resolved and validated, column
roles inferred, rows split, preprocessing fitted on the training rows only, tensors for each
split, and a :class:`~polytask.data.report.ColumnReport` of what was made of every column.

The rows are encoded once, in split order (training rows, then validation, then test), into one
float32 array; the three splits are views of it, so preparing costs the table plus its encoding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from polytask.data.columns import ColumnRole, infer_roles
from polytask.data.config import DataConfig
from polytask.data.multi_input import LongFormat
from polytask.data.preprocessing import OTHER, FeaturePreprocessor, Unseen
from polytask.data.report import ColumnReport, FeatureSummary, TaskSummary, issue
from polytask.data.rows import RowOrigin
from polytask.data.splits import Split, split_indices
from polytask.data.tables import TableLike, as_frame
from polytask.data.targets import KindInference, TargetEncoder, infer_tasks_explained, validate_targets
from polytask.data.tensors import TaskTensors, encode_rows, split_views
from polytask.errors import PolytaskError
from polytask.tasks import Targets, Task, TaskSet, TaskSource


@dataclass
class Prepared:
    """A problem ready to train: tasks, split, fitted preprocessing and tensors per split, and
    the report of the columns (``columns``)."""

    frame: pd.DataFrame
    tasks: list[Task]
    split: Split
    preprocessor: FeaturePreprocessor
    encoders: list[TargetEncoder]
    train: TaskTensors
    val: TaskTensors
    test: TaskTensors
    columns: ColumnReport = field(default_factory=ColumnReport)

    @property
    def output_dims(self) -> dict[str, int]:
        return {e.task.name: e.output_dim for e in self.encoders}


def resolve_tasks(frame: pd.DataFrame, tasks: TaskSource, origin: RowOrigin | None = None) -> list[tuple[Task, KindInference]]:
    """The tasks ``tasks`` describes on ``frame`` with how each kind was chosen (inferred for
    column names, ``given`` for :class:`Task` objects and ``kinds``)."""
    if isinstance(tasks, Targets):
        return infer_tasks_explained(frame, list(tasks.main), list(tasks.aux), tasks.kinds, tasks.weights, origin)
    items = [tasks] if isinstance(tasks, (str, Task)) else list(tasks)
    names = [t for t in items if isinstance(t, str)]
    inferred = iter(infer_tasks_explained(frame, names, origin=origin) if names else [])
    out = [next(inferred) if isinstance(t, str) else (t, KindInference(getattr(t, "kind", ""), "given")) for t in items]
    bad = [t for t, _ in out if not isinstance(t, Task)]
    if bad:
        raise PolytaskError(f"a task is a column name or a polytask.Task, got {type(bad[0]).__name__}")
    return out


def _check_named(frame: pd.DataFrame, names: tuple[str, ...], what: str) -> None:
    absent = [c for c in names if c not in frame.columns]
    if absent:
        raise PolytaskError(f"{what} column '{absent[0]}' is not in the data")


def _candidates(frame: pd.DataFrame, config: DataConfig, target_cols: set[str]) -> list[str]:
    """The feature columns to consider: ``features``, else every column that is not a target,
    dropped or kept."""
    for names, what in ((config.drop, "--drop"), (config.keep, "--keep"), (config.categorical, "--categorical")):
        _check_named(frame, names, what)
    clash = [c for c in config.keep if c in target_cols]
    if clash:
        raise PolytaskError(f"column '{clash[0]}' is both a target and a --keep column")
    if config.features is None:
        skip = target_cols | set(config.drop) | set(config.keep)
        return [c for c in frame.columns if c not in skip]
    _check_named(frame, config.features, "feature")
    for names, what in ((target_cols, "a target"), (set(config.drop), "dropped"), (set(config.keep), "a --keep column")):
        clash = [c for c in config.features if c in names]
        if clash:
            raise PolytaskError(f"column '{clash[0]}' is both a feature and {what}")
    return list(config.features)


def bound_outputs(tasks: list[Task], names: tuple[str, ...] | None) -> list[Task]:
    """``tasks`` with a sigmoid output for every task named in ``names`` (``--bounded-output``)."""
    if not names:
        return tasks
    known = {t.name for t in tasks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise PolytaskError(f"--bounded-output names '{unknown[0]}', which is not a task")
    return [t.with_(output="sigmoid") if t.name in names else t for t in tasks]


def prepare(
    data: TableLike, tasks: TaskSource, config: DataConfig | None = None, *, seed: int = 0, split: Split | None = None
) -> Prepared:
    """Resolve tasks, validate targets, infer column roles, split rows and fit preprocessing on
    the training rows; warnings (:class:`~polytask.data.report.DataWarning`) name dropped
    columns, grouped categories, doubtful task kinds and categories unseen in training.

    ``seed`` seeds the split unless ``config.split_seed`` is set; ``split`` gives the rows of
    each split explicitly instead.
    """
    config = config or DataConfig()
    raw = as_frame(data)
    origin, long_format = RowOrigin.of(raw), LongFormat.of(raw)
    pre = FeaturePreprocessor(missing=config.missing, standardize=config.standardize_inputs,
                              max_categories=config.max_categories, dates_policy=config.dates,
                              na_values_=list(config.na_values), keep_=list(config.keep),
                              long_format_=long_format.to_dict() if long_format else None)
    frame = pre.missing_as_nan(raw.reset_index(drop=True))
    explained = resolve_tasks(frame, tasks, origin)
    task_list = bound_outputs(list(TaskSet(tuple(t for t, _ in explained))), config.bounded_outputs)
    validate_targets(frame, task_list, origin)
    target_cols = {c for t in task_list for c in t.columns}
    candidates = _candidates(frame, config, target_cols)
    if split is None:
        split_seed = seed if config.split_seed is None else config.split_seed
        split = split_indices(len(frame), config.val_fraction, config.test_fraction, split_seed, shuffle=config.shuffle_split)
    roles = infer_roles(frame, candidates, categorical=config.categorical, identifiers=config.identifiers,
                        explicit=config.features is not None, origin=origin)
    used = [r for r in roles if r.role not in ("identifier", "constant")]
    if used:
        pre.fit(frame, split.train, used, origin, drop_constant=True)
    if not used or not pre.columns_:
        raise PolytaskError("no feature columns are left once the targets and the dropped columns are removed"
                            + (f" (dropped: {', '.join(r.name for r in roles)})" if roles else ""))
    encoders = [TargetEncoder(t, standardize=config.standardize_targets).fit(frame, split.train) for t in task_list]
    order = np.concatenate([split.train, split.val, split.test]).astype(np.int64)
    tensors, unseen = encode_rows(frame, pre, encoders, order, origin)
    train, val, test = split_views(tensors, [len(split.train), len(split.val), len(split.test)])
    for task, count in train.label_counts().items():
        if count == 0:
            raise PolytaskError(f"task '{task}' has no labels in the training rows")
    report = column_report(roles, pre, explained, encoders, train, config, unseen)
    issue(report.warnings)
    return Prepared(frame, task_list, split, pre, encoders, train, val, test, report)


def column_report(roles: list[ColumnRole], pre: FeaturePreprocessor, explained: list[tuple[Task, KindInference]],
                  encoders: list[TargetEncoder], train: TaskTensors, config: DataConfig, unseen: Unseen) -> ColumnReport:
    """The :class:`ColumnReport` of a prepared table, with its warnings."""
    report = ColumnReport(kept=list(config.keep))
    report.dropped.update({c: "--drop" for c in config.drop})
    widths = pre.input_widths()
    for role in roles:
        if role.name in pre.dropped_:
            role = ColumnRole(role.name, "constant", pre.dropped_[role.name])
        if role.role == "identifier":
            report.dropped[role.name] = f"identifier: {role.detail}"
            report.warnings.append(f"feature column '{role.name}' looks like an identifier ({role.detail}): dropped "
                                   f"(--keep {role.name} copies it to predictions; --identifiers feature uses it)")
        elif role.role == "constant":
            report.dropped[role.name] = f"constant: {role.detail}"
            report.warnings.append(f"feature column '{role.name}' is constant ({role.detail}): dropped")
        else:
            report.features.append(FeatureSummary(role.name, role.role, widths[role.name], _detail(role, pre)))
            if "ambiguous" in role.detail:
                report.warnings.append(f"dates in '{role.name}' do not show whether the day or the month comes first: "
                                       f"read as {role.date_format}")
    for col, rare in pre.other_.items():
        kept = len(pre.categorical_[col])
        report.warnings.append(f"feature column '{col}' has {kept + rare['count']} categories: the {kept} most frequent "
                               f"have their own input, the other {rare['count']} share '{OTHER}' (--max-categories)")
    counts = train.label_counts()
    n_classes = {e.task.name: len(e.classes_) for e in encoders if e.classes_}
    for task, how in explained:
        classes = n_classes.get(task.name)
        report.tasks.append(TaskSummary(task.name, task.kind, how.reason, list(task.columns), counts.get(task.name, 0),
                                        classes, task.auxiliary))
        if how.warning:
            report.warnings.append(how.warning)
    if unseen:
        report.warnings.append(unseen.message(" (in the validation and test rows)"))
    return report


def _detail(role: ColumnRole, pre: FeaturePreprocessor) -> str:
    col = role.name
    if role.role == "categorical":
        n = len(pre.categorical_[col])
        return f"{n} categories" + (f" + '{OTHER}'" if col in pre.other_ else "")
    if role.role == "datetime":
        return ", ".join(pre.dates_[col]["parts"])
    missing = " + missing indicator" if col in pre.indicators_ else ""
    return ("true/false" if role.role == "boolean" else "") + missing


__all__ = ["Prepared", "column_report", "prepare", "resolve_tasks"]
