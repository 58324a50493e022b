"""Two clusters of tasks with a known construction (``synthetic.task_clusters``: tasks in a
cluster read the same latent factor of the inputs, tasks in different clusters independent
ones): gradient cosine, TAG affinity and the grouping all recover the clusters."""

from __future__ import annotations

import numpy as np
import pytest

from polytask.relate import Relatedness, choose_groups, measure_relatedness
from polytask.synthetic import task_clusters
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, prepare

CLUSTERS = [[0, 1, 2], [3, 4, 5]]


@pytest.fixture(scope="module")
def measured() -> Relatedness:
    frame, names = task_clusters(900, 10, CLUSTERS, n_latent=1, noise=0.2, seed=0)
    prepared = prepare(frame, names, seed=0)
    config = TrainConfig(epochs=12, batch_size=64, lr=1e-2, seed=0)
    return measure_relatedness(prepared, ["cosine", "tag"], every=2, spec=NetworkSpec(trunk=(32,)), config=config)


def cluster_of(name: str) -> int:
    return 0 if int(name[4:]) in CLUSTERS[0] else 1


def test_gradient_cosine_is_higher_within_clusters(measured: Relatedness) -> None:
    cos = measured.matrices["cosine_mean"].frame
    names = list(cos.index)
    within = [cos.loc[a, b] for a in names for b in names if a != b and cluster_of(a) == cluster_of(b)]
    across = [cos.loc[a, b] for a in names for b in names if cluster_of(a) != cluster_of(b)]
    assert min(within) > max(across)
    conflict = measured.matrices["cosine_conflict"].frame
    assert np.mean([conflict.loc[a, b] for a in names for b in names if a != b and cluster_of(a) == cluster_of(b)]) < \
        np.mean([conflict.loc[a, b] for a in names for b in names if cluster_of(a) != cluster_of(b)])
    curve = measured.curves["cosine"]
    assert list(curve.index) == list(range(12)) and "task0~task1" in curve.columns


def test_tag_affinity_onto_each_task_is_higher_from_its_own_cluster(measured: Relatedness) -> None:
    z = measured.matrices["tag"].frame  # row: source i, column: target j
    assert not measured.matrices["tag"].symmetric
    for target in z.columns:
        own = [z.loc[s, target] for s in z.index if s != target and cluster_of(s) == cluster_of(target)]
        other = [z.loc[s, target] for s in z.index if cluster_of(s) != cluster_of(target)]
        assert min(own) > max(other), target


@pytest.mark.parametrize("source", ["tag", "cosine_mean"])
@pytest.mark.parametrize("max_groups", [2, None])
def test_grouping_recovers_the_clusters(measured: Relatedness, source: str, max_groups: int | None) -> None:
    grouping = choose_groups(measured.matrices[source], max_groups=max_groups)
    assert grouping.search == "exact"
    assert sorted(sorted(g) for g in grouping.groups) == [["task0", "task1", "task2"], ["task3", "task4", "task5"]]
