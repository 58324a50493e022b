"""One call that trains a multi-task network while measuring how its tasks relate.

``measure_relatedness`` trains the all-in-one network on a prepared problem with the
:class:`~polytask.relate.agreement.GradientAgreement` and
:class:`~polytask.relate.affinity.LookaheadAffinity` callbacks (every ``every`` steps), then
measures hidden-unit sharing on the trained network over the training rows. It returns the
matrices (``sharing_gradient``, ``sharing_ablation``, ``cosine_mean``, ``cosine_conflict``,
``tag``) and the curves over training (``cosine``, ``conflict``, ``tag``).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from polytask.data.tables import TableLike
from polytask.errors import PolytaskError
from polytask.fitted import FittedModel
from polytask.relate.affinity import LookaheadAffinity
from polytask.relate.agreement import GradientAgreement
from polytask.relate.matrix import TaskMatrix
from polytask.relate.sharing import SENSITIVITIES, hidden_unit_sharing
from polytask.training.callbacks import Callback
from polytask.training.config import TrainConfig
from polytask.data.config import DataConfig
from polytask.data.prepare import Prepared, prepare
from polytask.tasks import TaskSource
from polytask.workflow import NetworkSpec, train_model

METHODS: tuple[str, ...] = ("sharing", "cosine", "tag")


def resolve_methods(methods: str | Sequence[str]) -> list[str]:
    """``"all"`` or names from :data:`METHODS` -> a list of method names."""
    items = [methods] if isinstance(methods, str) else list(methods)
    out: list[str] = []
    for m in items:
        if m == "all":
            out.extend(METHODS)
        elif m in METHODS:
            out.append(m)
        else:
            raise PolytaskError(f"unknown relatedness method '{m}' (choose from {', '.join(METHODS)}, all)")
    return list(dict.fromkeys(out))


@dataclass
class Relatedness:
    """Matrices (T x T, with task names) and curves over training, and the trained model."""

    task_names: list[str]
    matrices: dict[str, TaskMatrix]
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    model: FittedModel | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        """Every matrix as a DataFrame indexed by task name."""
        return {name: m.frame for name, m in self.matrices.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": self.task_names, "info": self.info,
                "matrices": {name: m.to_dict() for name, m in self.matrices.items()}}


def measure_relatedness(
    prepared: Prepared,
    methods: str | Sequence[str] = "all",
    every: int = 10,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    callbacks: Sequence[Callback] = (),
) -> Relatedness:
    """Train the all-in-one network on ``prepared`` and measure the chosen relatedness methods
    (``every``: record cosine and TAG every this many training steps)."""
    chosen = resolve_methods(methods)
    if every < 1 and ("cosine" in chosen or "tag" in chosen):
        raise PolytaskError(f"--every must be >= 1, got {every}")
    agreement = GradientAgreement(every) if "cosine" in chosen else None
    affinity = LookaheadAffinity(every) if "tag" in chosen else None
    recorders = [cb for cb in (agreement, affinity) if cb is not None]
    started = time.perf_counter()
    model = train_model(prepared, spec, config, callbacks=[*recorders, *callbacks])
    names = [t.name for t in prepared.tasks]
    matrices: dict[str, TaskMatrix] = {}
    curves: dict[str, pd.DataFrame] = {}
    info: dict[str, Any] = {"methods": chosen, "every": every, "train_rows": len(prepared.train),
                            "epochs_run": model.summary["epochs_run"]}
    if agreement is not None:
        a = agreement.result()
        matrices["cosine_mean"], matrices["cosine_conflict"] = a.mean_cosine, a.conflict
        curves["cosine"], curves["conflict"] = a.cosine_curve, a.conflict_curve
        info["cosine_recorded_steps"] = a.recorded_steps
    if affinity is not None:
        z = affinity.result()
        matrices["tag"] = z.affinity
        curves["tag"] = z.curve
        info["tag_recorded_steps"] = z.recorded_steps
    if "sharing" in chosen:
        for method in SENSITIVITIES:
            matrix, _ = hidden_unit_sharing(model, prepared.train.x, method, names)
            matrices[matrix.name] = matrix
    info["seconds"] = time.perf_counter() - started
    return Relatedness(names, matrices, curves, model, info)


def relate(
    data: TableLike,
    tasks: TaskSource,
    methods: str | Sequence[str] = "all",
    every: int = 10,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    data_config: DataConfig | None = None,
) -> Relatedness:
    """:func:`measure_relatedness` on a table: ``prepare`` (split seeded by the config's seed
    unless ``data_config.split_seed`` is set) then train and measure."""
    config = config or TrainConfig()
    return measure_relatedness(prepare(data, tasks, data_config, seed=config.seed), methods, every, spec, config)
