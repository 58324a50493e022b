"""From data to recommended task groups: measure an affinity, search the partition, and
optionally train the groups against all-in-one MTL and STL.

Sources of the affinity matrix: ``combined`` (the default: gradient cosine and hidden-unit
sharing, each scaled to a common size and averaged, :mod:`polytask.relate.combine`), ``tag``
(look-ahead affinity), ``cosine`` (mean gradient cosine), ``sharing`` (hidden-unit sharing,
gradient sensitivities) or ``standley`` (pairwise runs and the higher-order approximation;
T(T-1)/2 extra trainings). All but ``standley`` come from one training run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from polytask.errors import PolytaskError
from polytask.relate.combine import combine
from polytask.relate.compare import GroupComparison, compare_groups
from polytask.relate.grouping import EXACT_LIMIT, Grouping, choose_groups
from polytask.relate.matrix import TaskMatrix
from polytask.relate.measure import Relatedness, measure_relatedness
from polytask.relate.standley import PairwiseRuns, pairwise_runs
from polytask.training.callbacks import Callback
from polytask.training.config import TrainConfig
from polytask.data.prepare import Prepared
from polytask.workflow import NetworkSpec

SOURCES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # source -> (relatedness methods to measure, matrices it is built from)
    "combined": (("cosine", "sharing"), ("cosine_mean", "sharing_gradient")),
    "tag": (("tag",), ("tag",)),
    "cosine": (("cosine",), ("cosine_mean",)),
    "sharing": (("sharing",), ("sharing_gradient",)),
    "standley": ((), ("standley",)),
}
DEFAULT_SOURCE = "combined"


@dataclass
class GroupReport:
    """The chosen grouping, the matrix it came from, and (optionally) the trained comparison."""

    grouping: Grouping
    matrix: TaskMatrix
    relatedness: Relatedness | None = None
    pairwise: PairwiseRuns | None = None
    comparison: GroupComparison | None = None

    def recommendation(self) -> dict[str, Any]:
        """What to do, in words (:func:`group_recommendation`)."""
        return group_recommendation(self.grouping, self.comparison)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"grouping": self.grouping.to_dict(), "matrix": self.matrix.to_dict(),
                               "recommendation": self.recommendation()}
        if self.pairwise is not None:
            out["pairwise"] = {
                "stl_val_loss": self.pairwise.stl_loss,
                "pair_val_loss": {f"{a}+{b}": v for (a, b), v in self.pairwise.pair_loss.items()},
            }
        if self.comparison is not None:
            out["comparison"] = self.comparison.to_dict()
        return out


def _plan_text(groups: list[list[str]]) -> str:
    if len(groups) == 1:
        return "train all tasks in one network"
    if all(len(g) == 1 for g in groups):
        return "train each task alone (STL)"
    return "group these tasks: " + " | ".join(", ".join(g) for g in groups)


def group_recommendation(grouping: Grouping, comparison: GroupComparison | None = None) -> dict[str, Any]:
    """``{"action", "setup", "text", "evidence"}``.

    Without a trained comparison: the grouping the affinity suggests, marked as untested. With
    one (``--train``): the set-up (the groups, all tasks in one network, or STL) with the best
    delta-m against STL on the *validation* rows (STL counts with 0), and the test delta-m of
    each set-up as the evidence. One split gives no significance test: ``polytask compare``
    repeats splits for that."""
    groups = [list(g) for g in grouping.groups]
    suggested = _plan_text(groups)
    if comparison is None:
        return {"action": suggested, "setup": "groups", "evidence": [],
                "text": f"{suggested} (from the '{grouping.source}' affinity; not checked by training: add --train)"}
    val = {"stl": 0.0, **{k: v for k, v in comparison.val_delta_m.items() if v == v}}
    setup = max(val, key=lambda k: (val[k], k == "stl"))  # a tie goes to the simpler STL
    action = {"groups": suggested, "mtl": "train all tasks in one network", "stl": "train each task alone (STL)"}[setup]
    evidence = [f"{k}: validation delta-m {comparison.val_delta_m.get(k, float('nan')) * 100:+.2f}%, test delta-m "
                f"{comparison.delta_m.get(k, float('nan')) * 100:+.2f}%, {comparison.parameters[k]:,} parameters"
                for k in ("groups", "mtl")]
    test = comparison.delta_m.get(setup, 0.0) if setup != "stl" else 0.0
    if setup == "stl":
        why = "neither the groups nor one network for all beats STL on the validation rows"
    else:
        why = (f"best on the validation rows ({val[setup] * 100:+.2f}% delta-m against STL); on the test rows "
               f"{test * 100:+.2f}%")
    return {"action": action, "setup": setup, "evidence": evidence,
            "text": f"{action}: {why} (one split, no significance test; polytask compare repeats splits)"}


def group_tasks(
    prepared: Prepared,
    source: str = DEFAULT_SOURCE,
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
        methods, names = SOURCES[source]
        relatedness = measure_relatedness(prepared, list(methods), every, spec, config, callbacks)
        matrix = relatedness.matrices[names[0]] if len(names) == 1 else combine(
            [relatedness.matrices[n] for n in names])
    grouping = choose_groups(matrix, max_groups, exact_limit=exact_limit)
    comparison = None
    if train:
        mtl = relatedness.model if relatedness is not None else None
        comparison = compare_groups(prepared, grouping.groups, spec, config, mtl=mtl, callbacks=callbacks)
    return GroupReport(grouping, matrix, relatedness, pairwise, comparison)
