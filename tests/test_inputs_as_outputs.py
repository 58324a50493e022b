"""Inputs as outputs and multiple representations of one target."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polytask import PolytaskError, Targets
from polytask.auxiliary import inputs_as_outputs, target_representations
from polytask.synthetic import related_tasks
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, fit

FAST = TrainConfig(epochs=3, batch_size=64, seed=0)
SPEC = NetworkSpec(trunk=(8,))


@pytest.fixture
def frame() -> pd.DataFrame:
    data, _ = related_tasks(n_rows=150, n_features=5, n_tasks=1, seed=4)
    return data


def test_moved_inputs_are_outputs_and_not_needed_to_predict(frame: pd.DataFrame) -> None:
    moved = inputs_as_outputs(frame, ["x3", "x4"])
    assert moved.aux == ["x3", "x4"] and moved.removed_inputs == ["x3", "x4"]
    assert moved.features(exclude=["task0"]) == ["x0", "x1", "x2"]
    report = fit(moved.frame, Targets(["task0"], aux=moved.aux, kinds=moved.kinds), SPEC, FAST)
    assert report.mtl.feature_columns == ["x0", "x1", "x2"]
    preds = report.mtl.predict(frame[["x0", "x1", "x2"]])  # only the remaining inputs
    assert list(preds.columns) == ["task0"] and len(preds) == len(frame)
    assert {"x3", "x4"} <= set(report.mtl.summary["val_metrics"])


def test_keeping_them_as_inputs_too(frame: pd.DataFrame) -> None:
    kept = inputs_as_outputs(frame, ["x4"], keep_as_inputs=True)
    assert kept.aux == ["x4:as_output"] and kept.removed_inputs == []
    np.testing.assert_array_equal(kept.frame["x4:as_output"], frame["x4"])
    report = fit(kept.frame, Targets(["task0"], aux=kept.aux), SPEC, FAST)
    assert "x4" in report.mtl.feature_columns and "x4:as_output" not in report.mtl.feature_columns
    with pytest.raises(PolytaskError, match="x4"):
        report.mtl.predict(frame.drop(columns=["x4"]))
    with pytest.raises(PolytaskError, match="nope"):
        inputs_as_outputs(frame, ["nope"])


def test_representations_match_their_definitions(frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame.loc[3, "task0"] = np.nan
    rows = np.arange(100)
    reps = target_representations(frame, "task0", n_bins=4, rows=rows)
    assert reps.aux == ["task0:bin", "task0:quantile", "task0:log"]
    assert reps.kinds == {"task0:bin": "multiclass", "task0:quantile": "regression", "task0:log": "regression"}
    y = frame["task0"].to_numpy()
    ref = y[rows][np.isfinite(y[rows])]
    # quantile: the fraction of fitting values <= y (an oracle by brute force)
    expected_q = [np.mean(ref <= v) if np.isfinite(v) else np.nan for v in y]
    np.testing.assert_allclose(reps.frame["task0:quantile"], expected_q)
    np.testing.assert_allclose(reps.frame["task0:log"], np.sign(y) * np.log1p(np.abs(y)))
    edges = np.quantile(ref, [0.25, 0.5, 0.75])
    for v, label in zip(y, reps.frame["task0:bin"]):
        if np.isfinite(v):
            assert label == f"b{int(np.sum(v >= edges))}"
        else:
            assert label is None or label != label
    counts = reps.frame["task0:bin"].iloc[rows].value_counts()
    assert counts.min() >= 20  # quantile bins are balanced on the fitting rows
    report = fit(reps.frame, Targets(["task0"], aux=reps.aux, kinds=reps.kinds), SPEC, FAST)
    assert list(report.mtl.predict(frame).columns) == ["task0"]
    with pytest.raises(PolytaskError, match="representation 'sqrt'"):
        target_representations(frame, "task0", ["sqrt"])
