"""``polytask relate`` and ``polytask group`` end to end, the Standley approximation, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polytask.cli import main
from polytask.relate import choose_groups, pairwise_runs, relate
from polytask.relate.standley import best_validation_losses
from polytask.synthetic import task_clusters
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, prepare

FAST = ["--epochs", "3", "--trunk", "8", "--batch-size", "32", "--quiet"]


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frame, _ = task_clusters(240, 5, [[0, 1], [2]], n_latent=1, noise=0.2, seed=0)
    frame["task2"] = np.where(frame["task2"] > 0, "hi", "lo")  # a binary task among regressions
    path = tmp_path_factory.mktemp("data") / "data.csv"
    frame.to_csv(path, index=False)
    return path


def run(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


TARGETS = ["-t", "task0", "-t", "task1", "-t", "task2"]


def test_relate_writes_matrices_heatmaps_curves_and_summary(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rel"
    code, stdout, err = run(["relate", csv_file, *TARGETS, "--every", "2", "--out", out, "--json", *FAST], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    expected = {"sharing_gradient", "sharing_ablation", "cosine_mean", "cosine_conflict", "tag"}
    assert set(report["matrices"]) == expected
    for name in expected:
        frame = pd.read_csv(out / f"{name}.csv", index_col=0)
        assert list(frame.index) == list(frame.columns) == ["task0", "task1", "task2"]
        assert json.loads((out / f"{name}.json").read_text())["tasks"] == ["task0", "task1", "task2"]
        assert (out / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for curve in ("cosine", "conflict", "tag"):
        assert (out / f"{curve}_curve.csv").exists() and (out / f"{curve}_curve.png").exists()
    assert "tag" in (out / "summary.txt").read_text()
    # the same directory may be rewritten; only the chosen method this time
    code, _, err = run(["relate", csv_file, *TARGETS, "--method", "cosine", "--out", out, *FAST], capsys)
    assert code == 0, err
    assert (out / "cosine_mean.csv").exists() and not (out / "tag.csv").exists()


def test_group_with_train_writes_groups_and_comparison(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "grp"
    code, stdout, err = run(["group", csv_file, *TARGETS, "--max-groups", "2", "--train", "--every", "2",
                             "--out", out, "--json", *FAST], capsys)
    assert code == 0, err
    groups = json.loads((out / "groups.json").read_text())
    assert isinstance(groups, list) and 1 <= len(groups) <= 2
    assert sorted(t for g in groups for t in g) == ["task0", "task1", "task2"]
    comparison = json.loads((out / "comparison.json").read_text())
    assert set(comparison["test_metrics"]) == {"groups", "mtl", "stl"}
    for setup in ("groups", "mtl", "stl"):
        assert set(comparison["test_metrics"][setup]) == {"task0", "task1", "task2"}
        assert comparison["total_parameters"][setup] > 0
    assert set(comparison["delta_m_vs_stl"]) == {"groups", "mtl"}
    assert len(pd.read_csv(out / "comparison.csv")) >= 3
    assert json.loads(stdout)["grouping"]["groups"] == groups


def test_standley_pairwise_approximation(csv_file: Path) -> None:
    frame = pd.read_csv(csv_file)
    prepared = prepare(frame, ["task0", "task1", "task2"], seed=0)
    runs = pairwise_runs(prepared, NetworkSpec(trunk=(8,)), TrainConfig(epochs=3, batch_size=32))
    assert set(runs.pair_loss) == {("task0", "task1"), ("task0", "task2"), ("task1", "task2")}
    a = runs.affinity().frame
    for (x, y), losses in runs.pair_loss.items():
        assert a.loc[x, y] == pytest.approx(1 - losses[y] / runs.stl_loss[y])
        assert a.loc[y, x] == pytest.approx(1 - losses[x] / runs.stl_loss[x])
    # higher-order estimate: the mean of the pairwise losses with the rest of the group
    expected = (runs.pair_loss[("task0", "task2")]["task0"] + runs.pair_loss[("task0", "task1")]["task0"]) / 2
    assert runs.estimated_loss(["task0", "task1", "task2"], "task0") == pytest.approx(expected)
    assert runs.estimated_loss(["task1"], "task1") == runs.stl_loss["task1"]
    assert len(choose_groups(runs.affinity(), max_groups=2).groups) <= 2


def test_best_validation_losses_takes_each_tasks_minimum() -> None:
    class Model:
        summary = {"history": [{"val_loss": {"a": 2.0, "b": 1.0}}, {"val_loss": {"a": 1.5, "b": 3.0}}]}

    assert best_validation_losses(Model()) == {"a": 1.5, "b": 1.0}  # type: ignore[arg-type]


def test_python_api_returns_dataframes(csv_file: Path) -> None:
    frame = pd.read_csv(csv_file)
    result = relate(frame, ["task0", "task1"], methods="sharing", spec=NetworkSpec(trunk=(8,)),
                    config=TrainConfig(epochs=2, batch_size=32))
    assert set(result.matrices) == {"sharing_gradient", "sharing_ablation"}
    assert list(result.frames()["sharing_gradient"].columns) == ["task0", "task1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["relate", "{csv}", "-t", "nope", "--out", "{out}"], "nope"),
        (["relate", "{csv}", "-t", "task0", "-t", "task1", "--every", "0", "--out", "{out}"], "--every"),
        (["group", "{csv}", "-t", "task0", "-t", "task1", "--max-groups", "0", "--out", "{out}"], "--max-groups"),
        (["relate", "{missing}", "-t", "task0", "--out", "{out}"], "does not exist"),
        (["group", "{csv}", "-t", "task0", "-t", "task1", "--out", "{full}"], "refusing"),
    ],
)
def test_bad_input_is_one_line_error(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     args: list[str], message: str) -> None:
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    subs = {"{csv}": str(csv_file), "{out}": str(tmp_path / "o"), "{missing}": str(tmp_path / "x.csv"), "{full}": str(full)}
    code, _, err = run([subs.get(a, a) for a in args] + FAST, capsys)
    assert code == 2
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert (full / "keep.txt").read_text() == "mine"
