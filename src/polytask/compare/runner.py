"""Run every candidate on the same splits.

Schemes (:class:`RunPlan`):

- ``seeds``: repeated seeded train/validation/test splits of all rows (or of the non-test rows,
  when the problem has official test rows);
- ``folds``: K-fold cross-validation, each fold the test rows once, validation rows drawn from
  the rest;
- ``disjoint``: one set of test rows (the official ones, or ``test_fraction`` of the rows drawn
  once), and the other rows cut into ``n`` disjoint pools, each split into training and
  validation rows: the runs share no training row, so they are independent draws of a training
  set (the little-data points of a learning curve).

``pool_size`` limits the rows a run builds its model from (training plus validation) to a
seeded subset of that size. A :class:`Comparison` records whether any two runs share a training
row (``overlap``): with ``seeds`` and ``folds`` they do, and the summary's verdict then uses the
Nadeau-Bengio corrected test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from polytask.compare.candidates import Candidate, CandidateRun, run_candidate
from polytask.data.splits import Split, split_indices
from polytask.errors import PolytaskError
from polytask.data.config import DataConfig
from polytask.data.prepare import prepare
from polytask.tasks import Targets, Task
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec

SCHEMES: tuple[str, ...] = ("seeds", "folds", "disjoint")

#: ``progress(done, total, description)`` is called before and after each candidate run.
Progress = Callable[[int, int, str], None]


@dataclass
class Problem:
    """What to compare on: a table, its tasks and features, and optionally fixed test rows
    (a data set's official test split; only train/validation are then re-drawn per seed)."""

    frame: pd.DataFrame
    targets: list[str]
    aux: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)
    tasks: list[Task] | None = None
    weights: dict[str, float] = field(default_factory=dict)
    features: list[str] | None = None
    test_rows: np.ndarray | None = None
    name: str = "data"
    #: How features and targets are prepared (its ``features`` is replaced by the problem's).
    data_config: DataConfig | None = None


@dataclass
class RunPlan:
    """How the runs are drawn."""

    scheme: str = "seeds"  # "seeds", "folds" or "disjoint"
    n: int = 3
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    base_seed: int = 0
    pool_size: int | None = None

    def __post_init__(self) -> None:
        if self.scheme not in SCHEMES:
            raise PolytaskError(f"unknown run scheme '{self.scheme}' (choose from {', '.join(SCHEMES)})")
        if self.n < 2:
            raise PolytaskError(f"a paired test needs at least 2 {self.scheme}, got {self.n}")
        if self.pool_size is not None and self.pool_size < 4:
            raise PolytaskError(f"a pool of {self.pool_size} rows is too small to train and validate on")

    def splits(self, n_rows: int, test_rows: np.ndarray | None = None) -> list[Split]:
        """The ``n`` splits of ``range(n_rows)`` (``test_rows``: the official test rows)."""
        if self.scheme == "disjoint":
            return self._disjoint(n_rows, test_rows)
        splits = self._resampled(n_rows, test_rows)
        return splits if self.pool_size is None else [self._limit(s, r) for r, s in enumerate(splits)]

    def _pool_split(self, pool: np.ndarray, test: np.ndarray) -> Split:
        n_val = int(round(self.val_fraction * len(pool)))
        return Split(np.sort(pool[n_val:]), np.sort(pool[:n_val]), np.sort(test))

    def _limit(self, split: Split, r: int) -> Split:
        pool = np.concatenate([split.train, split.val])
        if self.pool_size is not None and self.pool_size > len(pool):
            raise PolytaskError(f"pool of {self.pool_size} rows asked, only {len(pool)} non-test rows in a run")
        pool = np.random.default_rng(self.base_seed + 10_000 + r).permutation(pool)[: self.pool_size]
        return self._pool_split(pool, split.test)

    def _disjoint(self, n_rows: int, test_rows: np.ndarray | None) -> list[Split]:
        rng = np.random.default_rng(self.base_seed)
        if test_rows is None:
            order = rng.permutation(n_rows)
            n_test = int(round(self.test_fraction * n_rows))
            test, rest = order[:n_test], order[n_test:]
        else:
            test = np.sort(np.asarray(test_rows))
            rest = rng.permutation(np.setdiff1d(np.arange(n_rows), test))
        size = self.pool_size or len(rest) // self.n
        if size * self.n > len(rest) or size < 4:
            raise PolytaskError(f"{self.n} disjoint pools of {size} rows need {size * self.n} non-test rows, "
                                f"the data have {len(rest)}")
        return [self._pool_split(rest[r * size : (r + 1) * size], test) for r in range(self.n)]

    def _resampled(self, n_rows: int, test_rows: np.ndarray | None) -> list[Split]:
        if test_rows is not None:
            test = np.sort(np.asarray(test_rows))
            rest = np.setdiff1d(np.arange(n_rows), test)
            out = []
            for r in range(self.n):
                rng = np.random.default_rng(self.base_seed + r)
                perm = rng.permutation(rest)
                n_val = int(round(self.val_fraction * len(rest)))
                out.append(Split(np.sort(perm[n_val:]), np.sort(perm[:n_val]), test))
            return out
        if self.scheme == "seeds":
            return [split_indices(n_rows, self.val_fraction, self.test_fraction, self.base_seed + r) for r in range(self.n)]
        perm = np.random.default_rng(self.base_seed).permutation(n_rows)
        folds = np.array_split(perm, self.n)
        out = []
        for k, test in enumerate(folds):
            rest = np.concatenate([f for j, f in enumerate(folds) if j != k])
            rest = np.random.default_rng(self.base_seed + k).permutation(rest)
            n_val = int(round(self.val_fraction * n_rows))
            out.append(Split(np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(test)))
        return out


@dataclass
class RunRecord:
    """One split and what every candidate did on it."""

    index: int
    seed: int
    rows: dict[str, int]
    results: dict[str, CandidateRun]

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.index, "seed": self.seed, "rows": self.rows,
                "results": {k: v.to_dict() for k, v in self.results.items()}}


@dataclass
class Comparison:
    """The raw outcome of a comparison, before any statistics."""

    problem: Problem
    plan: RunPlan
    candidates: list[Candidate]
    tasks: list[Task]
    runs: list[RunRecord]
    spec: NetworkSpec
    config: TrainConfig
    #: Whether any two runs share a training row (then the runs are not independent).
    overlap: bool = True


def compare(
    problem: Problem,
    candidates: Sequence[Candidate],
    plan: RunPlan | None = None,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    match_params: bool = False,
    progress: Progress | None = None,
) -> Comparison:
    """Train and score every candidate on every split of ``plan``.

    Run ``r`` uses seed ``base_seed + r`` for its split, its preprocessing and every model's
    initialization, so all candidates of a run see identical rows."""
    plan = plan or RunPlan()
    spec = spec or NetworkSpec()
    config = config or TrainConfig()
    if not any(c.family == "stl" for c in candidates):
        raise PolytaskError("the comparison needs the STL candidate (the reference of delta-m)")
    splits = plan.splits(len(problem.frame), problem.test_rows)
    data_config = problem.data_config or DataConfig()
    total = len(splits) * len(candidates)
    done = 0
    runs: list[RunRecord] = []
    tasks: list[Task] = []
    for r, split in enumerate(splits):
        seed = plan.base_seed + r
        tasks_source = problem.tasks or Targets(tuple(problem.targets), tuple(problem.aux), problem.kinds, problem.weights)
        features = tuple(problem.features) if problem.features is not None else None
        prepared = prepare(problem.frame, tasks_source, replace(data_config, features=features), split=split, seed=seed)
        tasks = prepared.tasks
        results: dict[str, CandidateRun] = {}
        mtl_params = None
        for cand in sorted(candidates, key=lambda c: c.family == "stl"):  # STL last: it may match MTL's size
            if progress:
                progress(done, total, f"{plan.scheme[:-1]} {r + 1}/{len(splits)}: {cand.name}")
            match = mtl_params if (match_params and cand.family == "stl") else None
            results[cand.name] = run_candidate(cand, prepared, spec, config, seed, match_params_to=match)
            if cand.family == "mtl" and mtl_params is None:
                mtl_params = results[cand.name].parameters
            done += 1
            if progress:
                progress(done, total, f"{plan.scheme[:-1]} {r + 1}/{len(splits)}: {cand.name}")
        ordered = {c.name: results[c.name] for c in candidates}
        rows = {"train": len(split.train), "val": len(split.val), "test": len(split.test)}
        runs.append(RunRecord(r, seed, rows, ordered))
    return Comparison(problem, plan, list(candidates), tasks, runs, spec, config, overlap=training_overlap(splits))


def training_overlap(splits: Sequence[Split]) -> bool:
    """Whether two of ``splits`` share a training row."""
    seen: set[int] = set()
    for split in splits:
        rows = set(int(i) for i in split.train)
        if rows & seen:
            return True
        seen |= rows
    return False
