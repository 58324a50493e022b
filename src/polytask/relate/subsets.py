"""A prepared problem restricted to some of its tasks (same rows, split and preprocessing)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.data.prepare import Prepared


def _keep(data: TaskTensors, names: set[str]) -> TaskTensors:
    return TaskTensors(data.x, {k: v for k, v in data.targets.items() if k in names},
                       {k: v for k, v in data.masks.items() if k in names})


def subset_prepared(prepared: Prepared, tasks: Sequence[str]) -> Prepared:
    """``prepared`` with only ``tasks`` (in the original task order); the split is shared, so
    models trained on different subsets are evaluated on the same rows."""
    known = [t.name for t in prepared.tasks]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise PolytaskError(f"unknown task '{unknown[0]}' (tasks: {', '.join(known)})")
    if not tasks:
        raise PolytaskError("a group needs at least one task")
    names = set(tasks)
    return replace(
        prepared,
        tasks=[t for t in prepared.tasks if t.name in names],
        encoders=[e for e in prepared.encoders if e.task.name in names],
        train=_keep(prepared.train, names),
        val=_keep(prepared.val, names),
        test=_keep(prepared.test, names),
    )
