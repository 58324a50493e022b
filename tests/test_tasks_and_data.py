"""Tasks, target encoding, preprocessing and splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polytask import PolytaskError, Task
from polytask.data import (
    DataWarning,
    FeaturePreprocessor,
    TargetEncoder,
    from_task_column,
    from_task_datasets,
    infer_tasks,
    split_indices,
    validate_targets,
)
from polytask.tasks import TaskSet
from polytask.workflow import prepare


def test_task_defaults_and_validation() -> None:
    t = Task("y", "binary")
    assert t.columns == ("y",) and t.loss_name == "bce" and t.metric_names[0] == "log_loss"
    with pytest.raises(PolytaskError, match="loss 'bce' does not fit kind 'regression'"):
        Task("y", "regression", loss="bce")
    with pytest.raises(PolytaskError, match="unknown kind 'ordinal'"):
        Task("y", "ordinal")  # type: ignore[arg-type]
    with pytest.raises(PolytaskError, match="task name 'a' is used twice"):
        TaskSet((Task("a"), Task("a", columns=("b",))))
    with pytest.raises(PolytaskError, match="every task is auxiliary"):
        TaskSet((Task("a", auxiliary=True),))
    assert Task.from_dict(Task("m", "multilabel", ("a", "b"), weight=2.0).to_dict()) == Task("m", "multilabel", ("a", "b"), weight=2.0)


def test_kind_inference(mixed_frame: pd.DataFrame) -> None:
    mixed_frame["flag"] = (mixed_frame["task0"] > 0).astype(int)
    tasks = {t.name: t.kind for t in infer_tasks(mixed_frame, ["task0", "label", "grade", "flag"])}
    assert tasks == {"task0": "regression", "label": "binary", "grade": "multiclass", "flag": "binary"}


def test_preprocessing_is_fitted_on_training_rows_only() -> None:
    train = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "c": ["x", "y", "x", "y"]})
    test = pd.DataFrame({"a": [100.0, 200.0], "c": ["z", "x"]})  # unseen scale and category
    pre = FeaturePreprocessor().fit(train)
    assert pre.numeric_["a"]["mean"] == pytest.approx(1.5)
    assert pre.numeric_["a"]["std"] == pytest.approx(np.std([0, 1, 2, 3]))
    with pytest.warns(DataWarning, match=r"'c' 1 rows \('z' x1\)"):  # counted, not silent
        out = pre.transform(test)
    np.testing.assert_allclose(out[:, 0], (np.array([100.0, 200.0]) - 1.5) / np.std([0, 1, 2, 3]), rtol=1e-6)
    np.testing.assert_array_equal(out[:, 1:], [[0, 0], [1, 0]])  # unseen 'z' is all zeros


def test_prepare_fits_preprocessing_on_the_train_split(mixed_frame: pd.DataFrame) -> None:
    mixed_frame.loc[:, "x0"] = np.arange(len(mixed_frame), dtype=float)
    p = prepare(mixed_frame, ["task0", "task1"], seed=5)
    assert p.preprocessor.numeric_["x0"]["mean"] == pytest.approx(p.split.train.mean())
    # target scaling comes from training labels only too
    enc = p.encoders[0]
    assert enc.mean_[0] == pytest.approx(mixed_frame["task0"].iloc[p.split.train].mean())


def test_missing_feature_policy() -> None:
    train = pd.DataFrame({"a": [1.0, np.nan, 3.0, 5.0]})
    pre = FeaturePreprocessor(missing="impute").fit(train)
    out = pre.transform(train)
    assert pre.output_names == ["a", "a__missing"]
    np.testing.assert_array_equal(out[:, 1], [0, 1, 0, 0])
    assert out[1, 0] == pytest.approx((3.0 - 3.0) / np.std([1, 3, 5]))  # median 3, mean 3
    with pytest.raises(PolytaskError, match="feature column 'a' has a missing value"):
        FeaturePreprocessor(missing="error").fit(train)
    with pytest.raises(PolytaskError, match="feature column 'b' has an infinite value"):
        FeaturePreprocessor().fit(pd.DataFrame({"b": [1.0, np.inf]}))


def test_preprocessor_json_round_trip(mixed_frame: pd.DataFrame) -> None:
    feats = mixed_frame[["x0", "x1", "colour"]]
    pre = FeaturePreprocessor().fit(feats)
    again = FeaturePreprocessor.from_dict(pre.to_dict())
    np.testing.assert_array_equal(pre.transform(feats), again.transform(feats))


def test_target_encoding_masks_missing_labels() -> None:
    frame = pd.DataFrame({"y": [1.0, np.nan, 3.0, None], "c": ["a", "", "b", None]})
    reg = TargetEncoder(Task("y")).fit(frame, np.arange(4))
    y, m = reg.encode(frame)
    np.testing.assert_array_equal(m[:, 0], [True, False, True, False])
    assert reg.mean_ == [2.0] and reg.std_ == [1.0]
    np.testing.assert_allclose(y[:, 0], [-1.0, 0.0, 1.0, 0.0])
    cls = TargetEncoder(Task("c", "binary")).fit(frame, np.arange(4))
    y, m = cls.encode(frame)
    assert cls.classes_ == ["a", "b"]
    np.testing.assert_array_equal(m[:, 0], [True, False, True, False])
    np.testing.assert_array_equal(y[:, 0], [0, 0, 1, 0])


def test_numeric_classes_match_across_int_and_float_parsing() -> None:
    as_float = pd.DataFrame({"y": [0.0, 1.0, np.nan, 2.0]})
    enc = TargetEncoder(Task("y", "multiclass")).fit(as_float, np.arange(4))
    y, m = enc.encode(pd.DataFrame({"y": [2, 0, 1]}))
    np.testing.assert_array_equal(y[:, 0], [2, 0, 1])
    assert m.all()


def test_target_validation_errors() -> None:
    frame = pd.DataFrame({"r": ["1.5", "abc", "2"], "one": ["a", "a", None], "empty": [np.nan] * 3})
    with pytest.raises(PolytaskError, match="regression target column 'r' holds non-numeric value 'abc'"):
        validate_targets(frame, [Task("r")])
    with pytest.raises(PolytaskError, match="classification task 'one' has a single class 'a'"):
        validate_targets(frame, [Task("one", "binary")])
    with pytest.raises(PolytaskError, match="task 'empty' has no labels"):
        validate_targets(frame, [Task("empty")])


def test_splits_are_seeded_disjoint_and_complete() -> None:
    a, b = split_indices(100, seed=1), split_indices(100, seed=1)
    np.testing.assert_array_equal(a.train, b.train)
    assert not np.array_equal(a.train, split_indices(100, seed=2).train)
    allrows = np.concatenate([a.train, a.val, a.test])
    assert sorted(allrows.tolist()) == list(range(100))
    ordered = split_indices(100, shuffle=False)
    assert ordered.train.max() < ordered.val.min() <= ordered.val.max() < ordered.test.min()


def test_multi_input_from_task_column_and_datasets() -> None:
    frame = pd.DataFrame({"school": ["s1", "s2", "s1", "s3"], "x": [1.0, 2.0, 3.0, 4.0], "score": [10, 20, 30, 40]})
    wide, names = from_task_column(frame, "school", "score")
    assert names == ["score@s1", "score@s2", "score@s3"]
    np.testing.assert_array_equal(wide["score@s1"].isna().to_numpy(), [False, True, False, True])
    assert wide.loc[2, "score@s1"] == 30 and "school" not in wide.columns
    stacked, names2 = from_task_datasets({"a": frame.iloc[:2][["x", "score"]], "b": frame.iloc[2:][["x", "score"]]}, "score")
    assert names2 == ["a", "b"] and stacked["a"].notna().sum() == 2


def test_numpy_and_torch_arrays_train_like_tables() -> None:
    import torch

    import polytask as pt
    from polytask.data import from_arrays

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4))
    y = np.stack([x[:, 0] + x[:, 1], x[:, 0] - x[:, 2]], axis=1)
    y[::3, 1] = np.nan  # a missing label, masked
    table, targets = from_arrays(torch.tensor(x), y)
    assert targets == ["y0", "y1"] and list(table.columns[:4]) == ["x0", "x1", "x2", "x3"]
    report = pt.fit(table, targets, config=pt.TrainConfig(epochs=3))
    assert set(report.metrics()["mtl"]) == {"y0", "y1"}
    with pytest.raises(PolytaskError, match="x has 120 rows but y has 3"):
        from_arrays(x, y[:3])
