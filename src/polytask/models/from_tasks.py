"""Build an architecture from a task list and an input shape, without data.

Output sizes follow the task kinds: a regression task has one output per target column, binary
one logit, multilabel one logit per label column, multiclass one logit per class (the class
count cannot be read from a task, so it is given in ``n_classes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from polytask.errors import PolytaskError
from polytask.models.base import MultiTaskNetwork
from polytask.models.spec import NetworkSpec
from polytask.tasks import Task


def output_dims_for(tasks: Sequence[Task], n_classes: Mapping[str, int] | None = None) -> dict[str, int]:
    """``{task: outputs}`` from the task kinds (multiclass sizes from ``n_classes``)."""
    n_classes = dict(n_classes or {})
    dims: dict[str, int] = {}
    for task in tasks:
        if task.kind == "multiclass":
            if task.name not in n_classes or int(n_classes[task.name]) < 2:
                raise PolytaskError(f"multiclass task '{task.name}' needs its class count (n_classes={{'{task.name}': K}}, K >= 2)")
            dims[task.name] = int(n_classes[task.name])
        elif task.kind == "binary":
            dims[task.name] = 1
        else:
            dims[task.name] = len(task.columns)
    return dims


def network_for_tasks(
    spec: NetworkSpec,
    tasks: Sequence[Task],
    input_shape: int | Sequence[int],
    n_classes: Mapping[str, int] | None = None,
) -> MultiTaskNetwork:
    """The network ``spec`` describes, for ``tasks`` on rows of ``input_shape`` (a feature
    count, or ``(C, H, W)`` for images): the same network :func:`polytask.workflow.train_model`
    would build for data of that shape."""
    return spec.build(input_shape, output_dims_for(tasks, n_classes))
