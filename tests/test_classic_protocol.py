"""The settings the classic back-propagation protocol needs: raw (unstandardized) inputs, raw
regression targets, and a sigmoid output unit for a regression task (``Task(output="sigmoid")``
or ``DataConfig(bounded_outputs=...)`` / ``--bounded-output``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from polytask import DataConfig, PolytaskError, Task
from polytask.cli import main
from polytask.compare.candidates import Candidate, run_candidate
from polytask.data.prepare import prepare
from polytask.fitted import FittedModel
from polytask.losses import task_loss
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, fit


@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-5, 5, 300), rng.uniform(-5, 5, 300)
    return pd.DataFrame({"a": a, "b": b, "bit": (a > 0).astype(float), "y": 1 / (1 + np.exp(-(a + b))),
                         "z": 10.0 + 3.0 * a})


def test_inputs_pass_through_unstandardized(frame: pd.DataFrame) -> None:
    raw = prepare(frame, ["y"], DataConfig(standardize_inputs=False, features=("a", "b", "bit")), seed=0)
    rows = raw.split.train
    np.testing.assert_allclose(raw.train.x.numpy(), frame[["a", "b", "bit"]].to_numpy()[rows], rtol=1e-6)
    scaled = prepare(frame, ["y"], DataConfig(features=("a", "b", "bit")), seed=0)
    x = scaled.train.x.numpy()
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0), 1.0, atol=1e-4)
    # the saved preprocessor reproduces the pass-through (mean 0, sd 1 recorded)
    assert raw.preprocessor.to_dict()["numeric"]["a"]["mean"] == 0.0


def test_targets_unstandardized_and_metrics_in_original_units(frame: pd.DataFrame) -> None:
    prepared = prepare(frame, ["z"], DataConfig(standardize_targets=False, features=("a", "b")), seed=0)
    enc = prepared.encoders[0]
    assert (enc.mean_, enc.std_) == ([0.0], [1.0])
    np.testing.assert_allclose(prepared.train.targets["z"].numpy()[:, 0], frame["z"].to_numpy()[prepared.split.train],
                               rtol=1e-6)
    scaled = prepare(frame, ["z"], DataConfig(features=("a", "b")), seed=0).encoders[0]
    assert scaled.std_[0] == pytest.approx(frame["z"].iloc[prepared.split.train].std(ddof=0))
    out = np.array([[11.0], [7.0]])
    np.testing.assert_allclose(enc.decode(out)["value"], out)


def test_sigmoid_output_loss_and_decoding_by_hand() -> None:
    task = Task("y", output="sigmoid")
    raw = torch.tensor([[0.0], [2.0], [-1.0]])
    target = torch.tensor([[0.5], [0.9], [0.1]])
    mask = torch.tensor([[True], [True], [False]])
    p = 1 / (1 + np.exp(-np.array([0.0, 2.0])))
    expected = np.mean((p - np.array([0.5, 0.9])) ** 2)
    assert float(task_loss(task, raw, target, mask)) == pytest.approx(expected, rel=1e-5)  # float32
    linear = float(task_loss(Task("y"), raw, target, mask))
    assert linear == pytest.approx(np.mean((np.array([0.0, 2.0]) - np.array([0.5, 0.9])) ** 2))
    assert Task.from_dict(task.to_dict()) == task
    assert Task.from_dict({"name": "y", "kind": "regression", "columns": ["y"]}).output == "linear"  # older files


def test_sigmoid_output_through_fit_keeps_targets_raw_and_predictions_bounded(frame: pd.DataFrame) -> None:
    config = TrainConfig(epochs=40, batch_size=300, optimizer="sgd", lr=0.5, momentum=0.9, seed=0)
    data = DataConfig(standardize_inputs=False, standardize_targets=True, bounded_outputs=("y",), features=("a", "b"))
    report = fit(frame, ["y", "z"], NetworkSpec(trunk=(8,), activation="sigmoid"), config, data_config=data)
    tasks = {t.name: t for t in report.prepared.tasks}
    assert tasks["y"].output == "sigmoid" and tasks["z"].output == "linear"
    enc = {e.task.name: e for e in report.prepared.encoders}
    assert (enc["y"].mean_, enc["y"].std_) == ([0.0], [1.0])  # never standardized
    assert enc["z"].std_[0] != 1.0  # standardize_targets still applies to the linear task
    pred = report.mtl.predict(frame)["y"].to_numpy()
    assert ((pred > 0) & (pred < 1)).all()
    raw = report.mtl.raw_outputs(frame)["y"][:, 0]
    np.testing.assert_allclose(pred, 1 / (1 + np.exp(-raw)), rtol=1e-5)
    # learned something: better than predicting the training mean
    rmse = report.mtl.summary["test_metrics"]["y"]["rmse"]
    test_y = frame["y"].to_numpy()[report.prepared.split.test]
    assert rmse < np.sqrt(np.mean((test_y - frame["y"].iloc[report.prepared.split.train].mean()) ** 2))


def test_bounded_output_errors(frame: pd.DataFrame) -> None:
    with pytest.raises(PolytaskError, match=r"column 'z' holds -2.43052, outside \[0, 1\]"):
        prepare(frame, ["z"], DataConfig(bounded_outputs=("z",)), seed=0)
    with pytest.raises(PolytaskError, match="'nope', which is not a task"):
        prepare(frame, ["y"], DataConfig(bounded_outputs=("nope",)), seed=0)
    with pytest.raises(PolytaskError, match="for regression tasks, not binary"):
        Task("bit", kind="binary", output="sigmoid")
    with pytest.raises(PolytaskError, match="unknown output 'tanh'"):
        Task("y", output="tanh")  # type: ignore[arg-type]


def test_baselines_score_a_sigmoid_task_in_the_same_units(frame: pd.DataFrame) -> None:
    data = dict(standardize_targets=False, features=("a", "b"))
    linear = prepare(frame, ["y"], DataConfig(**data), seed=0)
    bounded = prepare(frame, ["y"], DataConfig(**data, bounded_outputs=("y",)), seed=0)
    for family in ("hgb", "linear"):
        a = run_candidate(Candidate(family), linear, NetworkSpec(), TrainConfig(), seed=0).test["y"]["rmse"]
        b = run_candidate(Candidate(family), bounded, NetworkSpec(), TrainConfig(), seed=0).test["y"]["rmse"]
        # the same fit; only a prediction outside [0, 1] (boosting and ridge can overshoot) is
        # clipped by the logit of the sigmoid task, which can only bring it nearer a target in [0, 1]
        assert a * 0.8 < b <= a + 1e-9


def test_cli_options_and_saved_model(frame: pd.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "model"
    code = main(["fit", str(data), "-t", "y", "--features", "a,b", "--bounded-output", "y", "--no-standardize-inputs",
                 "--no-standardize-targets", "--activation", "sigmoid", "--optimizer", "sgd", "--lr", "0.5",
                 "--epochs", "5", "--trunk", "4", "--out", str(out), "--quiet"])
    assert code == 0
    model = FittedModel.load(out)
    assert model.tasks[0].output == "sigmoid" and model.preprocessor.numeric_["a"] == {
        "mean": 0.0, "std": 1.0, "median": pytest.approx(float(np.median(frame["a"].iloc[model_train_rows(model, frame)])))}
    pred = model.predict(frame)["y"]
    assert ((pred > 0) & (pred < 1)).all()
    assert main(["fit", str(data), "-t", "y", "--bounded-output", "q", "--epochs", "1", "--out",
                 str(tmp_path / "m2"), "--quiet"]) == 2


def model_train_rows(model: FittedModel, frame: pd.DataFrame) -> np.ndarray:
    """The training rows of the CLI's default split (seed 0): the rows the median was taken on."""
    from polytask.data.splits import split_indices

    return split_indices(len(frame), 0.15, 0.15, 0).train
