"""From data to recommended task groups: measure an affinity, search the partition, and
optionally train the groups against all-in-one MTL and STL.

Sources of the affinity matrix: ``tag`` (look-ahead affinity, the default), ``cosine`` (mean
gradient cosine), ``sharing`` (hidden-unit sharing, gradient sensitivities) or ``standley``
(pairwise runs and the higher-order approximation; T(T-1)/2 extra trainings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from polytask.errors import PolytaskError
from polytask.relate.compare import GroupComparison, compare_groups
from polytask.relate.grouping import EXACT_LIMIT, Grouping, choose_groups
from polytask.relate.matrix import TaskMatrix
from polytask.relate.measure import Relatedness, measure_relatedness
from polytask.relate.standley import PairwiseRuns, pairwise_runs
from polytask.training.callbacks import Callback
from polytask.training.config import TrainConfig
from polytask.data.prepare import Prepared
from polytask.workflow import NetworkSpec

SOURCES: dict[str, tuple[str, str]] = {
    # source -> (relatedness method, matrix name)
    "tag": ("tag", "tag"),
    "cosine": ("cosine", "cosine_mean"),
    "sharing": ("sharing", "sharing_gradient"),
    "standley": ("", "standley"),
}


@dataclass
class GroupReport:
    """The chosen grouping, the matrix it came from, and (optionally) the trained comparison."""

    grouping: Grouping
    matrix: TaskMatrix
    relatedness: Relatedness | None = None
    pairwise: PairwiseRuns | None = None
    comparison: GroupComparison | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"grouping": self.grouping.to_dict(), "matrix": self.matrix.to_dict()}
        if self.pairwise is not None:
            out["pairwise"] = {
                "stl_val_loss": self.pairwise.stl_loss,
                "pair_val_loss": {f"{a}+{b}": v for (a, b), v in self.pairwise.pair_loss.items()},
            }
        if self.comparison is not None:
            out["comparison"] = self.comparison.to_dict()
        return out


def group_tasks(
    prepared: Prepared,
    source: str = "tag",
    max_groups: int | None = None,
    every: int = 10,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    train: bool = False,
    exact_limit: int = EXACT_LIMIT,
    callbacks: Sequence[Callback] = (),
) -> GroupReport:
    """Recommend groups of tasks to train together (and with ``train=True`` train them)."""
    if source not in SOURCES:
        raise PolytaskError(f"unknown affinity source '{source}' (choose from {', '.join(SOURCES)})")
    relatedness = pairwise = None
    if source == "standley":
        pairwise = pairwise_runs(prepared, spec, config)
        matrix = pairwise.affinity()
    else:
        method, name = SOURCES[source]
        relatedness = measure_relatedness(prepared, method, every, spec, config, callbacks)
        matrix = relatedness.matrices[name]
    grouping = choose_groups(matrix, max_groups, exact_limit=exact_limit)
    comparison = None
    if train:
        mtl = relatedness.model if relatedness is not None else None
        comparison = compare_groups(prepared, grouping.groups, spec, config, mtl=mtl, callbacks=callbacks)
    return GroupReport(grouping, matrix, relatedness, pairwise, comparison)
