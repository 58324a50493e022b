"""Standley et al., "Which Tasks Should Be Learned Together in Multi-task Learning?", ICML 2020:
the higher-order approximation, which estimates a group's performance from pairwise runs.

Train every task alone (STL) and every pair of tasks together; record each task's validation
loss at its best epoch, ``L_t^{STL}`` and ``L_t^{(s,t)}``. The approximation estimates task
``t``'s loss in a larger group ``G`` as the mean of its pairwise losses with the other members,

    L_t(G) ~ mean_{s in G, s != t} L_t^{(s,t)},

(``L_t^{STL}`` when alone). Written as a relative gain over training alone,
``A[s, t] = 1 - L_t^{(s,t)} / L_t^{STL}``, the estimated gain of ``t`` in ``G`` is
``mean_{s in G \\ t} A[s, t]``: TAG's objective on ``A``, so the same partition search applies
(:func:`polytask.relate.grouping.choose_groups`). Costs T(T-1)/2 pair trainings plus one STL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from polytask.fitted import FittedModel
from polytask.relate.matrix import TaskMatrix
from polytask.relate.subsets import subset_prepared
from polytask.training.config import TrainConfig
from polytask.data.prepare import Prepared
from polytask.setups import stl_settings
from polytask.workflow import NetworkSpec, train_model


def best_validation_losses(model: FittedModel) -> dict[str, float]:
    """Each task's lowest validation loss over the epochs trained (its best epoch)."""
    out: dict[str, float] = {}
    for h in model.summary.get("history", []):
        for task, value in (h.get("val_loss") or {}).items():
            if value is not None and math.isfinite(value):
                out[task] = min(out.get(task, math.inf), float(value))
    return out


@dataclass
class PairwiseRuns:
    """Validation losses of every task alone and in every pair."""

    task_names: list[str]
    stl_loss: dict[str, float]
    pair_loss: dict[tuple[str, str], dict[str, float]]

    def affinity(self) -> TaskMatrix:
        """``A[s, t] = 1 - L_t^{(s,t)} / L_t^{STL}`` (row s helps column t when positive)."""
        names = self.task_names
        a = np.full((len(names), len(names)), np.nan)
        for (x, y), losses in self.pair_loss.items():
            i, j = names.index(x), names.index(y)
            for src, dst, di in ((i, j, y), (j, i, x)):
                base = self.stl_loss.get(di, math.nan)
                if di in losses and base > 0:
                    a[src, dst] = 1.0 - losses[di] / base
        np.fill_diagonal(a, 0.0)
        return TaskMatrix("standley", names, a, "Standley pairwise gain 1 - L_t(pair s,t) / L_t(alone), row s onto column t",
                          symmetric=False)

    def estimated_loss(self, group: Sequence[str], task: str) -> float:
        """The higher-order approximation of ``task``'s validation loss in ``group``."""
        others = [s for s in group if s != task]
        if not others:
            return self.stl_loss[task]
        return float(np.mean([self.pair_loss[tuple(sorted((s, task), key=self.task_names.index))][task] for s in others]))


def pairwise_runs(prepared: Prepared, spec: NetworkSpec | None = None, config: TrainConfig | None = None) -> PairwiseRuns:
    """Train STL and every pair of tasks on ``prepared``'s split; record best validation losses."""
    names = [t.name for t in prepared.tasks]
    stl = train_model(prepared, *stl_settings(spec or NetworkSpec(), config or TrainConfig()), name="stl")
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for x, y in combinations(names, 2):
        model = train_model(subset_prepared(prepared, [x, y]), spec, config)
        pairs[(x, y)] = best_validation_losses(model)
    return PairwiseRuns(names, best_validation_losses(stl), pairs)
