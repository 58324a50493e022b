"""Task specifications: what each output of a multi-task network is.

A :class:`Task` names its target column(s), its kind, its loss, its metrics, its weight
``alpha_t`` in the joint loss ``sum_t alpha_t L_t`` and whether it is *auxiliary*: trained as an
extra output (Caruana 1997) but never predicted nor reported as a main result.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from polytask.errors import PolytaskError

TaskKind = Literal["regression", "binary", "multiclass", "multilabel"]
TASK_KINDS: tuple[str, ...] = get_args(TaskKind)
#: How a regression head's raw output ``r`` becomes a prediction (in encoded units): ``linear``
#: (``r`` itself) or ``sigmoid`` (``1 / (1 + exp(-r))``, bounded to (0, 1)).
OutputLink = Literal["linear", "sigmoid"]
OUTPUT_LINKS: tuple[str, ...] = get_args(OutputLink)

#: Loss used when a task does not name one.
DEFAULT_LOSS: dict[str, str] = {
    "regression": "mse",
    "binary": "bce",
    "multiclass": "cross_entropy",
    "multilabel": "bce",
}
#: Losses each kind accepts.
ALLOWED_LOSSES: dict[str, tuple[str, ...]] = {
    "regression": ("mse", "l1", "huber"),
    "binary": ("bce",),
    "multiclass": ("cross_entropy",),
    "multilabel": ("bce",),
}
#: Metrics reported when a task does not name them; the first is the one early stopping uses.
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "regression": ("rmse", "mae", "r2"),
    "binary": ("log_loss", "accuracy", "roc_auc", "f1"),
    "multiclass": ("log_loss", "accuracy", "roc_auc", "f1"),
    "multilabel": ("log_loss", "micro_f1", "macro_f1", "auc"),
}


@dataclass(frozen=True)
class Task:
    """One task of a multi-task problem.

    Args:
        name: unique task name (defaults to the target column).
        kind: ``regression``, ``binary``, ``multiclass`` or ``multilabel``.
        columns: target column(s). Regression may have several (a vector target); multilabel
            has one 0/1 column per label; binary and multiclass have exactly one.
        loss: loss name, or None for the kind's default (see :data:`DEFAULT_LOSS`).
        metrics: metric names, or None for the kind's defaults.
        weight: ``alpha_t`` in the joint loss.
        auxiliary: trained as an extra output only; never predicted or reported as a main result.
        output: for a regression task, ``linear`` (default) or ``sigmoid``: the prediction is
            ``sigmoid(r)`` of the head's raw output ``r``, bounded to (0, 1), and the loss
            compares ``sigmoid(r)`` with the target (the classic backprop output unit). The
            targets of a sigmoid task must lie in [0, 1] and are never standardized.
    """

    name: str
    kind: TaskKind = "regression"
    columns: tuple[str, ...] = ()
    loss: str | None = None
    metrics: tuple[str, ...] | None = None
    weight: float = 1.0
    auxiliary: bool = False
    output: OutputLink = "linear"

    def __post_init__(self) -> None:
        if not self.name:
            raise PolytaskError("a task needs a non-empty name")
        if self.kind not in TASK_KINDS:
            raise PolytaskError(
                f"task '{self.name}': unknown kind '{self.kind}' (choose from {', '.join(TASK_KINDS)})"
            )
        columns = (self.columns,) if isinstance(self.columns, str) else tuple(self.columns)
        object.__setattr__(self, "columns", columns or (self.name,))
        if self.kind in ("binary", "multiclass") and len(self.columns) != 1:
            raise PolytaskError(f"task '{self.name}': a {self.kind} task takes exactly one column")
        if self.loss is not None and self.loss not in ALLOWED_LOSSES[self.kind]:
            raise PolytaskError(
                f"task '{self.name}': loss '{self.loss}' does not fit kind '{self.kind}' "
                f"(choose from {', '.join(ALLOWED_LOSSES[self.kind])})"
            )
        if self.metrics is not None:
            object.__setattr__(self, "metrics", tuple(self.metrics))
        if self.output not in OUTPUT_LINKS:
            raise PolytaskError(f"task '{self.name}': unknown output '{self.output}' (choose from {', '.join(OUTPUT_LINKS)})")
        if self.output != "linear" and self.kind != "regression":
            raise PolytaskError(f"task '{self.name}': a {self.output} output is for regression tasks, not {self.kind}")
        if not (self.weight >= 0.0):
            raise PolytaskError(f"task '{self.name}': weight must be >= 0, got {self.weight}")

    @property
    def loss_name(self) -> str:
        return self.loss or DEFAULT_LOSS[self.kind]

    @property
    def metric_names(self) -> tuple[str, ...]:
        return self.metrics or DEFAULT_METRICS[self.kind]

    def with_(self, **changes: Any) -> "Task":
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "columns": list(self.columns),
            "loss": self.loss,
            "metrics": list(self.metrics) if self.metrics is not None else None,
            "weight": self.weight,
            "auxiliary": self.auxiliary,
            "output": self.output,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        return cls(
            name=d["name"],
            kind=d["kind"],
            columns=tuple(d["columns"]),
            loss=d.get("loss"),
            metrics=tuple(d["metrics"]) if d.get("metrics") is not None else None,
            weight=float(d.get("weight", 1.0)),
            auxiliary=bool(d.get("auxiliary", False)),
            output=d.get("output", "linear"),
        )


@dataclass(frozen=True)
class TaskSet:
    """An ordered, validated collection of tasks (unique names, no shared target columns)."""

    tasks: tuple[Task, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        tasks = tuple(self.tasks)
        object.__setattr__(self, "tasks", tasks)
        if not tasks:
            raise PolytaskError("at least one task (target column) is needed")
        names = [t.name for t in tasks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PolytaskError(f"task name '{dupes[0]}' is used twice")
        cols = [c for t in tasks for c in t.columns]
        dup_cols = sorted({c for c in cols if cols.count(c) > 1})
        if dup_cols:
            raise PolytaskError(f"target column '{dup_cols[0]}' belongs to two tasks")
        if all(t.auxiliary for t in tasks):
            raise PolytaskError("every task is auxiliary: at least one main task is needed")

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, name: str) -> Task:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.tasks]

    @property
    def main(self) -> list[Task]:
        return [t for t in self.tasks if not t.auxiliary]

    @property
    def target_columns(self) -> list[str]:
        return [c for t in self.tasks for c in t.columns]


@dataclass(frozen=True)
class Targets:
    """Which columns to learn, when the tasks are inferred from the table (the command line's
    ``--target``, ``--aux``, ``--kind`` and ``--weight``): one task per column, named after it,
    its kind inferred from the column unless ``kinds`` gives it, its weight ``alpha_t`` from
    ``weights`` (default 1). ``aux`` columns are auxiliary tasks: trained, never predicted."""

    main: tuple[str, ...]
    aux: tuple[str, ...] = ()
    kinds: dict[str, str] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "main", (self.main,) if isinstance(self.main, str) else tuple(self.main))
        object.__setattr__(self, "aux", (self.aux,) if isinstance(self.aux, str) else tuple(self.aux))
        object.__setattr__(self, "kinds", dict(self.kinds))
        object.__setattr__(self, "weights", dict(self.weights))


#: What a caller may give as the tasks of a problem: target column names (main tasks, kinds
#: inferred), :class:`Task` objects, a mix of both, or a :class:`Targets`.
TaskSource = Targets | Task | str | tuple[str | Task, ...] | list[str | Task]
