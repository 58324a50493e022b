"""STL in the multi-input setting: each task's network trains on the rows that label it alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import polytask as pt
from polytask.data import from_task_column
from polytask.setups import stl_settings
from polytask.training.callbacks import Callback

SETTINGS = pt.TrainConfig(epochs=3, batch_size=16, seed=0, patience=2)


def long_table(n: int = 240, groups: int = 3, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    g = rng.integers(0, groups, n)
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["row"] = np.arange(n, dtype=float)  # a feature that names the row
    frame["school"] = g
    frame["score"] = x[:, 0] * (1 + g) + 0.1 * rng.normal(size=n)
    return frame


class SeenRows(Callback):
    """Records, per training run, its tasks and the raw ``row`` feature of every batch."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] = []

    def on_fit_start(self, trainer: Any) -> None:
        self.runs.append({"tasks": list(trainer.task_names), "rows": [], "labelled": []})

    def on_step_end(self, trainer: Any, ctx: Any, weights: Any) -> None:
        batch = trainer.batch
        self.runs[-1]["rows"].append(batch.x)
        self.runs[-1]["labelled"].append(torch.stack([batch.masks[t].any(dim=1) for t in trainer.task_names]))


def raw_rows(report: pt.FitReport, x: torch.Tensor) -> np.ndarray:
    """The ``row`` feature of encoded features ``x`` (undoing the standardisation)."""
    pre = report.prepared.preprocessor
    j = pre.transform(pd.DataFrame({c: [0.0, 1.0] if c == "row" else [0.0, 0.0] for c in pre.columns_}))
    col = int(np.argmax(np.abs(j[1] - j[0])))
    return np.rint((x[:, col].numpy() - j[0, col]) / (j[1, col] - j[0, col])).astype(int)


def test_each_stl_network_sees_only_its_own_rows() -> None:
    wide, targets = from_task_column(long_table(), "school", "score")
    seen = SeenRows()
    report = pt.fit(wide, targets, config=SETTINGS, setups=[pt.STLBaseline()], callbacks={"stl": [seen]})
    assert [r["tasks"] for r in seen.runs] == [[t] for t in targets]  # one run per task, in order
    train = report.prepared.train
    for run in seen.runs:
        task = run["tasks"][0]
        own = set(raw_rows(report, train.x[train.labelled_rows(task)]).tolist())
        batches = [set(raw_rows(report, x).tolist()) for x in run["rows"]]
        assert all(b <= own for b in batches)  # never a row of another task
        assert set().union(*batches[: -(-len(own) // SETTINGS.batch_size)]) == own  # the first epoch saw all of them
        assert all(bool(lab.all()) for lab in run["labelled"])
    controls = report.stl.summary["controls"]["own_rows"]
    assert {t: c["train_rows"] for t, c in controls.items()} == train.label_counts()


def test_own_rows_keeps_the_split_and_the_meaning_of_the_results(tmp_path: Path) -> None:
    frame = long_table()
    wide, targets = from_task_column(frame, "school", "score")
    report = pt.fit(wide, targets, config=SETTINGS, setups=[pt.STLBaseline()])
    alone = pt.fit(wide, targets, config=SETTINGS)
    for part in ("train", "val", "test"):  # the same split as the MTL run alone
        assert np.array_equal(getattr(report.prepared.split, part), getattr(alone.prepared.split, part))
    stl = report.stl
    assert stl.network.arch == "stl" and set(stl.best_epoch) == set(targets)
    test_rows = wide.iloc[report.prepared.split.test]
    # the reported test metrics are the model's metrics on the test rows, each task on its own rows
    evaluated = stl.evaluate(test_rows)
    for task in targets:
        assert evaluated[task]["rmse"] == pytest.approx(stl.summary["test_metrics"][task]["rmse"], rel=1e-5)
        labelled = test_rows[task].notna().to_numpy()
        predicted = stl.predict(test_rows)[task].to_numpy()[labelled]
        rmse = float(np.sqrt(np.mean((predicted - test_rows[task].to_numpy()[labelled]) ** 2)))
        assert rmse == pytest.approx(stl.summary["test_metrics"][task]["rmse"], rel=1e-4)
    # the single-task networks learned something: better than predicting the training mean
    for task in targets:
        labelled = test_rows[task].notna().to_numpy()
        y = test_rows[task].to_numpy()[labelled]
        mean = float(wide.iloc[report.prepared.split.train][task].mean())
        assert stl.summary["test_metrics"][task]["rmse"] < float(np.sqrt(np.mean((y - mean) ** 2)))
    # the assembled model saves and loads with every task at its own best epoch
    loaded = pt.FittedModel.load(stl.save(tmp_path / "stl"))
    assert np.allclose(loaded.predict(test_rows).to_numpy(), stl.predict(test_rows).to_numpy())


def test_each_task_network_is_what_training_it_alone_gives() -> None:
    """A task's part of the STL model equals a single-task network trained by hand on that
    task's rows alone with the same settings, from the same starting weights."""
    wide, targets = from_task_column(long_table(), "school", "score")
    prepared = pt.prepare(wide, targets, seed=0)
    spec, config = stl_settings(pt.NetworkSpec(), SETTINGS)
    model = pt.train_model(prepared, spec, config, name="stl")
    task = targets[1]
    own = prepared.only(task)
    torch.manual_seed(config.seed)
    joint_init = spec.build(own.train.x.shape[1], prepared.output_dims).state_dict()
    keys = spec.build(own.train.x.shape[1], own.output_dims).state_dict()
    by_hand = pt.train_model(own, spec, config, name="alone", setups=[_StartFrom({k: joint_init[k] for k in keys})])
    ours = {k: v for k, v in model.network.state_dict().items() if k in by_hand.network.state_dict()}
    assert ours and all(torch.equal(ours[k], v) for k, v in by_hand.network.state_dict().items())


class _StartFrom(pt.Setup):
    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state = state

    def configure(self, plan: Any) -> None:
        def build(size: Any, dims: dict[str, int]) -> Any:
            net = plan.spec.build(size, dims)
            net.load_state_dict(self.state)
            return net
        plan.network_builder = build


def test_dense_labels_keep_the_joint_stl_run() -> None:
    """When rows label several tasks, STL stays one joint run over all rows."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(120, 3)), columns=["a", "b", "c"])
    frame["y1"], frame["y2"] = frame.a + 0.1 * rng.normal(size=120), frame.b - frame.c
    frame.loc[::7, "y2"] = np.nan  # a few missing labels do not make it multi-input
    seen = SeenRows()
    report = pt.fit(frame, ["y1", "y2"], config=SETTINGS, setups=[pt.STLBaseline()], callbacks={"stl": [seen]})
    assert [r["tasks"] for r in seen.runs] == [["y1", "y2"]]
    assert "own_rows" not in report.stl.summary["controls"]


def test_checkpoints_of_the_own_rows_runs_resume(tmp_path: Path) -> None:
    wide, targets = from_task_column(long_table(), "school", "score")
    first = pt.fit(wide, targets, config=SETTINGS, setups=[pt.STLBaseline(), pt.Checkpoints(tmp_path)])
    assert sorted(p.name for p in (tmp_path / "stl").iterdir()) == [f"task{i}" for i in range(len(targets))]
    again = pt.fit(wide, targets, config=SETTINGS, setups=[pt.STLBaseline(), pt.Checkpoints(tmp_path, resume=True)])
    test_rows = wide.iloc[first.prepared.split.test]
    assert np.allclose(first.stl.predict(test_rows).to_numpy(), again.stl.predict(test_rows).to_numpy())
