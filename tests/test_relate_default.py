"""The default affinity of ``polytask group`` (cosine and sharing, each scaled to unit size and
averaged) and the recommendation ``group`` prints.

The clustered problems are ``polytask_lab.experiments.grouping.block_clusters``: each cluster's
tasks are noisy linear functions of a nonlinear feature of the cluster's own block of inputs
(the construction on which TAG's look-ahead affinity, the former default, mis-grouped a task).
The seeds below (7001..) are outside those of the validation run that chose the default
(0..47) and of the reported check (1000..1079)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polytask.cli import main
from polytask.errors import PolytaskError
from polytask.relate import group_tasks
from polytask.relate.choose import DEFAULT_SOURCE, group_recommendation
from polytask.relate.combine import combine, normalized
from polytask.relate.compare import GroupComparison
from polytask.relate.grouping import Grouping
from polytask.relate.matrix import TaskMatrix
from polytask.training.config import TrainConfig
from polytask.workflow import prepare
from polytask_lab.experiments.grouping import block_clusters


def test_normalization_and_combination_by_hand() -> None:
    a = TaskMatrix("a", ["x", "y", "z"], np.array([[1.0, 0.2, -0.1], [0.4, 1.0, 0.0], [-0.1, 0.0, 1.0]]), symmetric=False)
    s = np.array([[0.0, 0.3, -0.1], [0.3, 0.0, 0.0], [-0.1, 0.0, 0.0]])  # symmetrized, diagonal dropped
    rms = np.sqrt(np.mean([0.3**2, 0.1**2, 0.0, 0.3**2, 0.1**2, 0.0]))
    np.testing.assert_allclose(normalized(a), s / rms)
    b = TaskMatrix("b", ["x", "y", "z"], np.array([[1.0, 1e-3, np.nan], [1e-3, 1.0, -2e-3], [np.nan, -2e-3, 1.0]]))
    nb = normalized(b)
    assert nb is not None and np.isnan(nb[0, 2])
    both = combine([a, b])
    # a defined entry is the mean of the normalized ones; one undefined in b takes a's alone
    assert both.values[0, 1] == pytest.approx((s[0, 1] / rms + nb[0, 1]) / 2)
    assert both.values[0, 2] == pytest.approx(s[0, 2] / rms)
    assert np.sign(both.values[1, 2]) == -1  # signs survive the scaling
    zero = TaskMatrix("zero", ["x", "y", "z"], np.zeros((3, 3)))
    assert normalized(zero) is None and combine([a, zero]).description.startswith("mean of a,")
    with pytest.raises(PolytaskError, match="same tasks"):
        combine([a, TaskMatrix("c", ["x", "z", "y"], np.eye(3))])
    with pytest.raises(PolytaskError, match="nothing to group on"):
        combine([zero])


@pytest.mark.parametrize("shape, seed", [((3, 3), 7001), ((2, 2, 2), 7002), ((4, 2), 7003)])
def test_the_default_recovers_plain_clusters(shape: tuple[int, ...], seed: int) -> None:
    frame, clusters = block_clusters(500, shape, noise=0.5, seed=seed)
    prepared = prepare(frame, [t for c in clusters for t in c], seed=seed)
    report = group_tasks(prepared, max_groups=len(shape), config=TrainConfig(seed=seed, val_metrics=False))
    assert DEFAULT_SOURCE == "combined" and report.grouping.source == "combined"
    assert sorted(map(sorted, report.grouping.groups)) == sorted(map(sorted, clusters))
    within, across = report.matrix.block_means(clusters)
    assert within > 0.5 > across  # unit-scaled: within-cluster entries well above across-cluster ones


def comparison(val: dict[str, float], test: dict[str, float]) -> GroupComparison:
    return GroupComparison([["a", "b"], ["c"]], {}, {"groups": 10, "mtl": 8, "stl": 12}, test, val_delta_m=val)


def test_recommendation_in_words() -> None:
    grouping = Grouping([["a", "b"], ["c"]], 0.5, {}, "exact", source="combined")
    untested = group_recommendation(grouping)
    assert untested["text"].startswith("group these tasks: a, b | c") and "add --train" in untested["text"]
    assert group_recommendation(Grouping([["a", "b", "c"]], 0.5, {}, "exact"))["action"] == \
        "train all tasks in one network"
    assert group_recommendation(Grouping([["a"], ["b"], ["c"]], 0.0, {}, "exact"))["action"] == \
        "train each task alone (STL)"
    # with a trained comparison the set-up best on the validation rows is recommended, STL included
    rec = group_recommendation(grouping, comparison({"groups": 0.04, "mtl": 0.02}, {"groups": -0.01, "mtl": 0.03}))
    assert rec["setup"] == "groups" and "-1.00%" in rec["text"] and len(rec["evidence"]) == 2
    rec = group_recommendation(grouping, comparison({"groups": -0.02, "mtl": -0.01}, {"groups": 0.05, "mtl": 0.05}))
    assert rec["action"] == "train each task alone (STL)" and "beats STL on the validation rows" in rec["text"]


def test_group_command_prints_and_writes_the_recommendation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame, clusters = block_clusters(300, (2, 2), noise=0.5, seed=7010)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    targets = [a for t in frame.columns if t.startswith("t") for a in ("-t", t)]
    out = tmp_path / "g"
    code = main(["group", str(data), *targets, "--max-groups", "2", "--train", "--epochs", "5", "--trunk", "8",
                 "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)
    rec = printed["recommendation"]
    assert rec["setup"] in {"groups", "mtl", "stl"} and rec["text"]
    assert json.loads((out / "grouping.json").read_text())["recommendation"] == rec
    assert (out / "summary.txt").read_text().startswith(f"recommendation: {rec['text']}")
    assert (out / "combined.csv").is_file()
    val = json.loads((out / "comparison.json").read_text())["val_delta_m_vs_stl"]
    best = max({"stl": 0.0, **val}.items(), key=lambda kv: kv[1])[0]
    assert rec["setup"] == best
