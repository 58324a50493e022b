"""Which tasks to train together: a partition of the tasks chosen from an affinity matrix.

Objective (TAG, Fifty et al. 2021, section 3.2): with ``A[i, j]`` the affinity of task ``i``
onto task ``j`` (TAG's ``Z_{i->j}``, a cosine, a sharing correlation, or Standley's pairwise
gain), a task ``j`` in group ``G`` scores

    s_j(G) = mean_{i in G, i != j} A[i, j]        (0 for a task alone: nothing transfers),

and a partition ``{G_1, ..., G_m}`` with ``m <= K`` scores ``mean_j s_j(G(j))``, each task
served by the one group it belongs to. Undefined entries (NaN) count as 0.

Search:

- exact (``T <= exact_limit``, 12 by default): depth-first over set partitions (tasks assigned
  in order to an open group or a new one while fewer than ``K`` are open), with branch and
  bound. The bound relaxes the coupling between tasks: an assigned task's score can at best
  reach the largest mean obtained by adding any of the unassigned tasks to its group (greedy
  over the unassigned affinities onto it, in decreasing order, while they raise the mean); an
  unassigned task's at best ``max(0, max_i A[i, u])``. A branch whose bound does not beat the
  best partition found so far (first the heuristic's) is cut. The result is optimal.
- heuristic (beyond the limit): agglomerative merging from singletons (the merge that raises
  the objective most; merges are forced while more than ``K`` groups remain), then single-task
  moves (to another group, or alone when fewer than ``K`` groups are open) while any move
  improves the objective. Deterministic, a local optimum, not guaranteed optimal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polytask.errors import PolytaskError
from polytask.relate.matrix import TaskMatrix

EXACT_LIMIT = 12


@dataclass
class Grouping:
    """A partition of tasks into groups, with the objective and each task's score."""

    groups: list[list[str]]
    score: float
    task_scores: dict[str, float]
    search: str
    source: str = ""
    max_groups: int = 0
    nodes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [list(g) for g in self.groups],
            "score": self.score,
            "task_scores": dict(self.task_scores),
            "search": self.search,
            "source": self.source,
            "max_groups": self.max_groups,
            "nodes_explored": self.nodes,
            **self.extra,
        }


def _clean(values: np.ndarray) -> np.ndarray:
    a = np.array(values, dtype=float)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise PolytaskError(f"an affinity matrix must be square, got shape {a.shape}")
    if np.isinf(a).any():
        raise PolytaskError("the affinity matrix holds an infinite value")
    a[np.isnan(a)] = 0.0
    np.fill_diagonal(a, 0.0)
    return a


def task_score(a: np.ndarray, group: Sequence[int], j: int) -> float:
    """``s_j(G)``: mean affinity onto ``j`` from the rest of its group (0 when alone)."""
    others = [i for i in group if i != j]
    return float(np.mean([a[i, j] for i in others])) if others else 0.0


def partition_score(a: np.ndarray, groups: Sequence[Sequence[int]]) -> float:
    """The objective: mean over tasks of ``s_j`` of the group holding ``j``."""
    t = a.shape[0]
    return sum(task_score(a, g, j) for g in groups for j in g) / t


def _bound_tables(a: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """The branch and bound's tables: ``free_tail[d]``, the sum over tasks ``d..`` of the best
    affinity each can receive (at least 0), and ``prefix[d][m, j]``, the sum of the ``m`` largest
    affinities onto ``j`` from tasks ``d..`` (``m = 0 .. t - d``)."""
    t = a.shape[0]
    free_bound = np.array([max(0.0, float(np.max(np.delete(a[:, u], u)))) if t > 1 else 0.0 for u in range(t)])
    free_tail = np.concatenate([np.cumsum(free_bound[::-1])[::-1], [0.0]])
    prefix = []
    for d in range(t + 1):
        top = -np.sort(-a[d:, :], axis=0)
        prefix.append(np.vstack([np.zeros((1, t)), np.cumsum(top, axis=0)]))
    return free_tail, prefix


def exact_partition(a: np.ndarray, max_groups: int, start: list[list[int]] | None = None) -> tuple[list[list[int]], float, int]:
    """The optimal partition (branch and bound), its score and the number of nodes explored.

    ``sums[j]`` and ``counts[j]`` hold, for each assigned task, the total affinity onto it from
    the rest of its group and their number; they are updated on assignment and undone on
    backtracking, so a bound costs a few vector operations.
    """
    t = a.shape[0]
    free_tail, prefix = _bound_tables(a)
    best_groups = start if start is not None else ([[j] for j in range(t)] if max_groups >= t else [list(range(t))])
    best = partition_score(a, best_groups)
    sums, counts = np.zeros(t), np.zeros(t)
    groups: list[list[int]] = []
    nodes = 0

    def bound(depth: int) -> float:
        if depth == 0:
            return float(free_tail[0]) / t
        pre = prefix[depth][:, :depth]
        m = np.arange(pre.shape[0])[:, None]
        n = counts[:depth][None, :] + m
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(n > 0, (sums[:depth][None, :] + pre) / np.maximum(n, 1), 0.0)
        return float(means.max(axis=0).sum() + free_tail[depth]) / t

    def assign(j: int, g: list[int], sign: float) -> None:
        for i in g:
            sums[i] += sign * a[j, i]
            counts[i] += sign
        sums[j] = float(a[g, j].sum()) if sign > 0 else 0.0
        counts[j] = len(g) if sign > 0 else 0.0

    def search(depth: int) -> None:
        nonlocal best, best_groups, nodes
        nodes += 1
        if depth == t:
            score = float(np.where(counts > 0, sums / np.maximum(counts, 1), 0.0).sum()) / t
            if score > best + 1e-12:
                best, best_groups = score, [list(g) for g in groups]
            return
        if bound(depth) <= best + 1e-12:
            return
        for g in groups:
            assign(depth, g, 1.0)
            g.append(depth)
            search(depth + 1)
            g.pop()
            assign(depth, g, -1.0)
        if len(groups) < max_groups:
            groups.append([depth])
            search(depth + 1)
            groups.pop()

    search(0)
    return best_groups, partition_score(a, best_groups), nodes


def heuristic_partition(a: np.ndarray, max_groups: int) -> tuple[list[list[int]], float]:
    """Agglomerative merging, then single-task moves (see the module docstring)."""
    t = a.shape[0]
    groups: list[list[int]] = [[j] for j in range(t)]
    score = partition_score(a, groups)
    while len(groups) > 1:
        best_gain, best_pair = -np.inf, None
        for x in range(len(groups)):
            for y in range(x + 1, len(groups)):
                merged = groups[x] + groups[y]
                before = sum(task_score(a, groups[x], j) for j in groups[x]) + sum(task_score(a, groups[y], j) for j in groups[y])
                gain = (sum(task_score(a, merged, j) for j in merged) - before) / t
                if gain > best_gain + 1e-15:
                    best_gain, best_pair = gain, (x, y)
        if best_pair is None or (best_gain <= 1e-12 and len(groups) <= max_groups):
            break
        x, y = best_pair
        groups[x] = groups[x] + groups[y]
        del groups[y]
        score += best_gain
    improved = True
    while improved:
        improved = False
        for j in range(t):
            src = next(g for g in groups if j in g)
            targets: list[list[int] | None] = [g for g in groups if g is not src]
            if len(groups) < max_groups and len(src) > 1:
                targets.append(None)
            for dst in targets:
                trial = [[i for i in g if i != j] if g is src else list(g) for g in groups]
                if dst is None:
                    trial.append([j])
                else:
                    trial[groups.index(dst)].append(j)
                trial = [g for g in trial if g]
                new = partition_score(a, trial)
                if new > score + 1e-12:
                    groups, score, improved = [sorted(g) for g in trial], new, True
                    break
            if improved:
                break
    return groups, partition_score(a, groups)


def choose_groups(
    matrix: TaskMatrix | np.ndarray,
    max_groups: int | None = None,
    task_names: Sequence[str] | None = None,
    exact_limit: int = EXACT_LIMIT,
) -> Grouping:
    """The partition of the tasks into at most ``max_groups`` groups (default: as many as
    tasks) that maximizes TAG's objective; exact up to ``exact_limit`` tasks."""
    if isinstance(matrix, TaskMatrix):
        names, values, source = list(matrix.task_names), matrix.values, matrix.name
    else:
        values, source = np.asarray(matrix, dtype=float), "matrix"
        names = list(task_names) if task_names is not None else [f"task{i}" for i in range(np.shape(values)[0])]
    a = _clean(values)
    t = a.shape[0]
    if len(names) != t:
        raise PolytaskError(f"{len(names)} task names for a {t} x {t} matrix")
    if t == 0:
        raise PolytaskError("no tasks to group")
    k = t if max_groups is None else int(max_groups)
    if k < 1:
        raise PolytaskError(f"--max-groups must be >= 1, got {k}")
    k = min(k, t)
    start, start_score = heuristic_partition(a, k)
    nodes = 0
    if t <= exact_limit:
        groups, score, nodes = exact_partition(a, k, start)
        search = "exact"
    else:
        groups, score = start, start_score
        search = "heuristic"
    groups = sorted((sorted(g) for g in groups), key=lambda g: g[0])
    return Grouping(
        groups=[[names[j] for j in g] for g in groups],
        score=float(score),
        task_scores={names[j]: task_score(a, g, j) for g in groups for j in g},
        search=search,
        source=source,
        max_groups=k,
        nodes=nodes,
    )
