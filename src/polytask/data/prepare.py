"""From a table and its tasks to a problem ready to train: tasks resolved and validated, rows
split, preprocessing fitted on the training rows only, tensors for each split."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from polytask.data.config import DataConfig
from polytask.data.preprocessing import FeaturePreprocessor
from polytask.data.splits import Split, split_indices
from polytask.data.tables import TableLike, as_frame
from polytask.data.targets import TargetEncoder, infer_tasks, validate_targets
from polytask.data.tensors import TaskTensors, to_tensors
from polytask.errors import PolytaskError
from polytask.tasks import Targets, Task, TaskSet, TaskSource


@dataclass
class Prepared:
    """A problem ready to train: tasks, split, fitted preprocessing and tensors per split."""

    frame: pd.DataFrame
    tasks: list[Task]
    split: Split
    preprocessor: FeaturePreprocessor
    encoders: list[TargetEncoder]
    train: TaskTensors
    val: TaskTensors
    test: TaskTensors

    @property
    def output_dims(self) -> dict[str, int]:
        return {e.task.name: e.output_dim for e in self.encoders}

    def only(self, task: str) -> "Prepared":
        """The problem of ``task`` alone: its encoder, and in each split the rows that label it
        (same split, same fitted preprocessing)."""
        encoders = [e for e in self.encoders if e.task.name == task]
        if not encoders:
            raise PolytaskError(f"no task named '{task}'")
        return Prepared(self.frame, [encoders[0].task], self.split, self.preprocessor, encoders,
                        self.train.only(task), self.val.only(task), self.test.only(task))


def resolve_tasks(frame: pd.DataFrame, tasks: TaskSource) -> list[Task]:
    """The :class:`Task` list that ``tasks`` describes on ``frame`` (kinds inferred for names)."""
    if isinstance(tasks, Targets):
        return infer_tasks(frame, list(tasks.main), list(tasks.aux), tasks.kinds, tasks.weights)
    items = [tasks] if isinstance(tasks, (str, Task)) else list(tasks)
    names = [t for t in items if isinstance(t, str)]
    inferred = iter(infer_tasks(frame, names) if names else [])
    out = [next(inferred) if isinstance(t, str) else t for t in items]
    bad = [t for t in out if not isinstance(t, Task)]
    if bad:
        raise PolytaskError(f"a task is a column name or a polytask.Task, got {type(bad[0]).__name__}")
    return out


def _feature_columns(frame: pd.DataFrame, features: tuple[str, ...] | None, target_cols: set[str]) -> list[str]:
    if features is None:
        return [c for c in frame.columns if c not in target_cols]
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise PolytaskError(f"feature column '{absent[0]}' is not in the data")
    clash = [c for c in features if c in target_cols]
    if clash:
        raise PolytaskError(f"column '{clash[0]}' is both a feature and a target")
    return list(features)


def prepare(
    data: TableLike, tasks: TaskSource, config: DataConfig | None = None, *, seed: int = 0, split: Split | None = None
) -> Prepared:
    """Resolve tasks, validate targets, split rows and fit preprocessing on the training rows.

    ``seed`` seeds the split unless ``config.split_seed`` is set; ``split`` gives the rows of
    each split explicitly instead.
    """
    config = config or DataConfig()
    frame = as_frame(data).reset_index(drop=True)
    task_list = list(TaskSet(tuple(resolve_tasks(frame, tasks))))
    validate_targets(frame, task_list)
    target_cols = {c for t in task_list for c in t.columns}
    features = _feature_columns(frame, config.features, target_cols)
    if split is None:
        split_seed = seed if config.split_seed is None else config.split_seed
        split = split_indices(len(frame), config.val_fraction, config.test_fraction, split_seed, shuffle=config.shuffle_split)
    preprocessor = FeaturePreprocessor(missing=config.missing).fit(frame.iloc[split.train][features])
    encoders = [TargetEncoder(t).fit(frame, split.train) for t in task_list]
    all_tensors = to_tensors(frame[features + sorted(target_cols)], preprocessor, encoders)
    train = all_tensors.subset(split.train)
    for task, count in train.label_counts().items():
        if count == 0:
            raise PolytaskError(f"task '{task}' has no labels in the training rows")
    return Prepared(frame, task_list, split, preprocessor, encoders, train,
                    all_tensors.subset(split.val), all_tensors.subset(split.test))
