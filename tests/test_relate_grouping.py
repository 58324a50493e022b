"""Task grouping: the branch-and-bound search against brute force, the heuristic, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from polytask.errors import PolytaskError
from polytask.relate.grouping import choose_groups, heuristic_partition, partition_score
from polytask.relate.matrix import TaskMatrix


def all_partitions(items: list[int]):  # type: ignore[no-untyped-def]
    """Every set partition of ``items`` (independent of the searched code)."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for part in all_partitions(rest):
        yield [[first]] + part
        for k in range(len(part)):
            yield part[:k] + [[first] + part[k]] + part[k + 1 :]


def brute_force(a: np.ndarray, max_groups: int) -> float:
    t = a.shape[0]
    best = -np.inf
    for part in all_partitions(list(range(t))):
        if len(part) > max_groups:
            continue
        total = 0.0
        for g in part:
            for j in g:
                others = [a[i, j] for i in g if i != j]
                total += np.mean(others) if others else 0.0
        best = max(best, total / t)
    return best


def test_partition_count_matches_bell_numbers() -> None:
    assert [sum(1 for _ in all_partitions(list(range(n)))) for n in range(1, 7)] == [1, 2, 5, 15, 52, 203]


@pytest.mark.parametrize("seed", range(24))
def test_exact_search_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t = int(rng.integers(2, 8))
    a = rng.normal(size=(t, t)) + (0.5 if seed % 3 == 0 else 0.0)
    k = int(rng.integers(1, t + 1))
    g = choose_groups(a, max_groups=k)
    assert g.search == "exact"
    assert len(g.groups) <= k
    assert sorted(n for grp in g.groups for n in grp) == sorted(f"task{i}" for i in range(t))
    assert g.score == pytest.approx(brute_force(a, k), abs=1e-12)
    index = [[int(n[4:]) for n in grp] for grp in g.groups]
    assert partition_score(np.where(np.eye(t, dtype=bool), 0.0, a), index) == pytest.approx(g.score)


@pytest.mark.parametrize("seed", range(10))
def test_heuristic_is_a_valid_partition_no_better_than_optimum(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    t, k = 7, 3
    a = rng.normal(size=(t, t))
    np.fill_diagonal(a, 0.0)
    groups, score = heuristic_partition(a, k)
    assert len(groups) <= k and sorted(j for g in groups for j in g) == list(range(t))
    assert score <= brute_force(a, k) + 1e-12
    forced = choose_groups(a, max_groups=k, exact_limit=0)
    assert forced.search == "heuristic" and forced.score == pytest.approx(score)


def test_block_structure_is_recovered_by_both_searches() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1])  # 14 tasks, three clusters
    a = np.where(labels[:, None] == labels[None, :], 1.0, -0.5) + 0.1 * rng.normal(size=(14, 14))
    names = [f"t{i}" for i in range(14)]
    expected = sorted(sorted(names[i] for i in np.flatnonzero(labels == c)) for c in range(3))
    heuristic = choose_groups(TaskMatrix("m", names, a, symmetric=False), max_groups=3)
    assert heuristic.search == "heuristic"
    assert sorted(sorted(g) for g in heuristic.groups) == expected
    exact = choose_groups(TaskMatrix("m", names[:9], a[:9, :9], symmetric=False), max_groups=3)
    assert exact.search == "exact"
    assert sorted(sorted(g) for g in exact.groups) == sorted(sorted(names[i] for i in range(9) if labels[i] == c) for c in range(3))


def test_bad_input() -> None:
    with pytest.raises(PolytaskError, match="square"):
        choose_groups(np.zeros((2, 3)))
    with pytest.raises(PolytaskError, match="max-groups"):
        choose_groups(np.zeros((2, 2)), max_groups=0)
    with pytest.raises(PolytaskError, match="infinite"):
        choose_groups(np.array([[0.0, np.inf], [0.0, 0.0]]))
