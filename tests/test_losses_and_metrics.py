"""Losses and metrics against hand computations and scikit-learn."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from polytask import Task
from polytask.data import TargetEncoder
from polytask.evaluate import delta_m, relative_delta, task_metrics
from polytask.losses import loss_vector, task_loss


def test_masked_mse_ignores_missing_entries() -> None:
    out = torch.tensor([[1.0], [2.0], [5.0]])
    y = torch.tensor([[0.0], [2.0], [0.0]])
    m = torch.tensor([[True], [True], [False]])
    assert task_loss(Task("r"), out, y, m).item() == pytest.approx((1.0 + 0.0) / 2)
    assert task_loss(Task("r"), out, y, torch.zeros_like(m)).item() == 0.0


@pytest.mark.parametrize("loss,fn", [("l1", lambda d: abs(d)), ("huber", lambda d: 0.5 * d * d if abs(d) <= 1 else abs(d) - 0.5)])
def test_regression_losses_by_hand(loss: str, fn) -> None:  # type: ignore[no-untyped-def]
    out = torch.tensor([[0.5], [3.0]])
    y = torch.zeros(2, 1)
    m = torch.ones(2, 1, dtype=torch.bool)
    assert task_loss(Task("r", loss=loss), out, y, m).item() == pytest.approx((fn(0.5) + fn(3.0)) / 2)


def test_classification_losses_match_sklearn_log_loss() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(50, 1))
    labels = rng.integers(0, 2, size=50)
    mask = rng.random(50) < 0.7
    got = task_loss(Task("b", "binary"), torch.tensor(logits), torch.tensor(labels[:, None], dtype=torch.float64), torch.tensor(mask[:, None]))
    p = 1 / (1 + np.exp(-logits[mask, 0]))
    assert got.item() == pytest.approx(skm.log_loss(labels[mask], p, labels=[0, 1]))
    logits3 = rng.normal(size=(50, 3))
    labels3 = rng.integers(0, 3, size=50)
    got3 = task_loss(Task("m", "multiclass"), torch.tensor(logits3), torch.tensor(labels3[:, None], dtype=torch.float64), torch.tensor(mask[:, None]))
    e = np.exp(logits3 - logits3.max(1, keepdims=True))
    p3 = e / e.sum(1, keepdims=True)
    assert got3.item() == pytest.approx(skm.log_loss(labels3[mask], p3[mask], labels=[0, 1, 2]))


def test_loss_vector_order() -> None:
    tasks = [Task("a"), Task("b")]
    outs = {"a": torch.ones(3, 1), "b": torch.zeros(3, 1)}
    tg = {"a": torch.zeros(3, 1), "b": torch.zeros(3, 1)}
    ms = {k: torch.ones(3, 1, dtype=torch.bool) for k in tg}
    np.testing.assert_allclose(loss_vector(tasks, outs, tg, ms).numpy(), [1.0, 0.0])


def test_regression_metrics_match_sklearn_in_original_units() -> None:
    rng = np.random.default_rng(1)
    enc = TargetEncoder(Task("r"), mean_=[10.0], std_=[2.0])
    true = rng.normal(size=(40, 1))
    pred = true + rng.normal(scale=0.3, size=(40, 1))
    mask = np.ones((40, 1), bool)
    mask[::4] = False
    got = task_metrics(enc, pred, true, mask)
    yt, yp = true[mask] * 2 + 10, pred[mask] * 2 + 10
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(yt, yp)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(yt, yp))
    assert got["r2"] == pytest.approx(skm.r2_score(yt, yp))


def test_binary_and_multiclass_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(2)
    enc = TargetEncoder(Task("b", "binary"), classes_=["no", "yes"])
    logits = rng.normal(size=(60, 1))
    y = (logits[:, 0] + rng.normal(size=60) > 0).astype(float)[:, None]
    mask = rng.random((60, 1)) < 0.8
    got = task_metrics(enc, logits, y, mask)
    p = 1 / (1 + np.exp(-logits[mask[:, 0], 0]))
    yt = y[mask[:, 0], 0]
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(yt, p))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, p >= 0.5))
    assert got["f1"] == pytest.approx(skm.f1_score(yt, p >= 0.5))
    assert got["log_loss"] == pytest.approx(skm.log_loss(yt, p))
    enc3 = TargetEncoder(Task("m", "multiclass"), classes_=["a", "b", "c"])
    logits3 = rng.normal(size=(90, 3))
    y3 = rng.integers(0, 3, size=(90, 1)).astype(float)
    full = np.ones((90, 1), bool)
    got3 = task_metrics(enc3, logits3, y3, full)
    e = np.exp(logits3 - logits3.max(1, keepdims=True))
    p3 = e / e.sum(1, keepdims=True)
    assert got3["roc_auc"] == pytest.approx(skm.roc_auc_score(y3[:, 0], p3, multi_class="ovr"))
    assert got3["f1"] == pytest.approx(skm.f1_score(y3[:, 0], p3.argmax(1), average="macro"))


def test_multilabel_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(3)
    enc = TargetEncoder(Task("ml", "multilabel", ("a", "b", "c")))
    logits = rng.normal(size=(40, 3))
    y = (rng.random((40, 3)) < 0.5).astype(float)
    mask = np.ones((40, 3), bool)
    got = task_metrics(enc, logits, y, mask)
    p = 1 / (1 + np.exp(-logits))
    assert got["micro_f1"] == pytest.approx(skm.f1_score(y, p >= 0.5, average="micro"))
    assert got["macro_f1"] == pytest.approx(skm.f1_score(y, p >= 0.5, average="macro"))
    assert got["auc"] == pytest.approx(skm.roc_auc_score(y, p, average="macro"))


def test_metrics_all_missing_are_nan() -> None:
    enc = TargetEncoder(Task("r"), mean_=[0.0], std_=[1.0])
    got = task_metrics(enc, np.zeros((3, 1)), np.zeros((3, 1)), np.zeros((3, 1), bool))
    assert all(math.isnan(v) for v in got.values())


def test_relative_delta_and_delta_m_by_hand() -> None:
    assert relative_delta("rmse", 0.9, 1.0) == pytest.approx(0.1)  # lower is better
    assert relative_delta("accuracy", 0.9, 0.8) == pytest.approx(0.125)
    mtl = {"a": {"rmse": 0.9}, "b": {"accuracy": 0.7}}
    stl = {"a": {"rmse": 1.0}, "b": {"accuracy": 0.8}}
    assert delta_m(mtl, stl) == pytest.approx((0.1 + (-0.125)) / 2)
    # one headline metric per task (its first): extra metrics do not add weight to a task
    mtl["a"]["mae"], stl["a"]["mae"] = 0.1, 1.0
    assert delta_m(mtl, stl) == pytest.approx((0.1 + (-0.125)) / 2)
    assert delta_m(mtl, stl, {"a": "mae"}) == pytest.approx((0.9 + (-0.125)) / 2)


def test_regression_metrics_equal_scikit_learns() -> None:
    from sklearn import metrics as skm

    from polytask.evaluate import _r2

    rng = np.random.default_rng(0)
    for y, p in [(rng.normal(size=50), rng.normal(size=50)), (np.full(5, 2.0), np.full(5, 2.0)), (np.full(5, 2.0), np.arange(5.0))]:
        assert _r2(y, p) == pytest.approx(skm.r2_score(y, p), abs=1e-12)
    assert np.isnan(_r2(np.array([1.0]), np.array([2.0])))


def _column_views(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    whole = np.concatenate(list(arrays.values()), axis=1)
    return {k: whole[:, j : j + 1] for j, k in enumerate(arrays)}


@pytest.mark.parametrize("side_by_side", [False, True])
@pytest.mark.parametrize("cells", [None, 20])
def test_metrics_by_task_scores_scalar_regressions_together_as_one_by_one(side_by_side: bool, cells: int | None,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The batched path (masked reductions over k columns, block by block of rows) gives
    task_metrics' values for every task, including a task with no label, one with a single
    label, a constant target, a sigmoid output and a classification task scored on its own; it
    keeps the encoders' order. Inputs come as separate arrays or as column views of one matrix
    (as the trainer's packed outputs), read in one block or in many (``cells``)."""
    from polytask import evaluate
    from polytask.evaluate import metrics_by_task

    if cells is not None:
        monkeypatch.setattr(evaluate, "_METRIC_CELLS", cells)

    rng = np.random.default_rng(3)
    n = 60
    encoders = [TargetEncoder(Task(f"r{j}"), mean_=[float(j)], std_=[1.0 + j]) for j in range(5)]
    encoders.append(TargetEncoder(Task("s", output="sigmoid"), standardize=False, mean_=[0.0], std_=[1.0]))
    encoders.append(TargetEncoder(Task("b", kind="binary"), classes_=[0, 1]))
    outputs = {e.task.name: rng.normal(size=(n, 1)).astype(np.float32) for e in encoders}
    targets = {e.task.name: rng.normal(size=(n, 1)).astype(np.float32) for e in encoders}
    targets["b"] = rng.integers(0, 2, size=(n, 1)).astype(np.float32)
    targets["r3"][:] = 0.5  # constant target: R^2 is 0 (imperfect fit)
    masks = {e.task.name: rng.random((n, 1)) < 0.7 for e in encoders}
    masks["r1"][:] = False  # no label: NaN everywhere
    masks["r2"][:] = False
    masks["r2"][7] = True  # one label: R^2 undefined
    if side_by_side:
        outputs, targets, masks = (_column_views(d) for d in (outputs, targets, masks))
        assert outputs["r0"].base is outputs["r4"].base is not None
    together = metrics_by_task(encoders, outputs, targets, masks)
    assert list(together) == [e.task.name for e in encoders]
    for e in encoders:
        alone = task_metrics(e, outputs[e.task.name], targets[e.task.name], masks[e.task.name])
        assert together[e.task.name].keys() == alone.keys()
        for metric, value in alone.items():
            if math.isnan(value):
                assert math.isnan(together[e.task.name][metric]), (e.task.name, metric)
            else:
                assert together[e.task.name][metric] == pytest.approx(value, rel=1e-10, abs=1e-12), (e.task.name, metric)
    assert together["r3"]["r2"] < 1.0 and math.isnan(together["r2"]["r2"]) and math.isnan(together["r1"]["rmse"])


@pytest.mark.parametrize("complete", [False, True])
def test_a_task_scorer_called_again_scores_each_outputs_as_a_fresh_call(complete: bool) -> None:
    """TaskScorer makes the labels' sums once (at construction) and the outputs' part per call:
    calls with different outputs each give metrics_by_task's values, with every label seen or
    some missing; the labels it was given are not changed by scoring."""
    from polytask.evaluate import TaskScorer, metrics_by_task

    rng = np.random.default_rng(5)
    n = 40
    encoders = [TargetEncoder(Task(f"r{j}"), mean_=[float(j)], std_=[2.0 + j]) for j in range(4)]
    targets = _column_views({e.task.name: rng.normal(size=(n, 1)).astype(np.float32) for e in encoders})
    masks = _column_views({e.task.name: (np.ones((n, 1), bool) if complete else rng.random((n, 1)) < 0.6)
                           for e in encoders})
    kept = {k: v.copy() for k, v in targets.items()}
    scorer = TaskScorer(encoders, targets, masks)
    for _ in range(3):
        outputs = _column_views({e.task.name: rng.normal(size=(n, 1)).astype(np.float32) for e in encoders})
        again, fresh = scorer(outputs), metrics_by_task(encoders, outputs, targets, masks)
        for task, values in fresh.items():
            for metric, value in values.items():
                assert again[task][metric] == pytest.approx(value, rel=1e-12), (task, metric)
        alone = task_metrics(encoders[0], outputs["r0"], targets["r0"], masks["r0"])
        assert again["r0"]["rmse"] == pytest.approx(alone["rmse"], rel=1e-10)
    assert all(np.array_equal(kept[k], targets[k]) for k in kept)


@pytest.mark.parametrize("order", ["side_by_side", "interleaved"])
def test_a_task_scorer_on_packed_outputs_equals_it_on_the_split_ones(order: str) -> None:
    """``TaskScorer.packed`` (the trainer's call: one packed matrix and its layout) gives the
    call on the layout's per-task views, whether the scalar regression tasks' columns are
    consecutive (read as one view) or have a classification task between them (gathered); a
    second layout with another order is not confused with the first."""
    from polytask.evaluate import TaskScorer
    from polytask.losses import OutputLayout

    rng = np.random.default_rng(6)
    n = 30
    encoders = [TargetEncoder(Task(f"r{j}"), mean_=[float(j)], std_=[1.5]) for j in range(3)]
    encoders.append(TargetEncoder(Task("c", kind="multiclass"), classes_=[0, 1, 2]))
    targets = {e.task.name: rng.normal(size=(n, 1)).astype(np.float32) for e in encoders}
    targets["c"] = rng.integers(0, 3, size=(n, 1)).astype(np.float32)
    masks = {e.task.name: rng.random((n, 1)) < 0.8 for e in encoders}
    names = ["r0", "r1", "r2", "c"] if order == "side_by_side" else ["r0", "c", "r1", "r2"]
    scorer = TaskScorer(encoders, targets, masks)
    for layout in (OutputLayout.of({t: 3 if t == "c" else 1 for t in names}),
                   OutputLayout.of({t: 3 if t == "c" else 1 for t in reversed(names)})):
        packed = rng.normal(size=(n, layout.width)).astype(np.float32)
        got, expected = scorer.packed(packed, layout), scorer(layout.split(packed))
        assert list(got) == list(expected) == [e.task.name for e in encoders]
        for task, values in expected.items():
            for metric, value in values.items():
                assert got[task][metric] == pytest.approx(value, rel=1e-12, nan_ok=True), (task, metric)


def test_column_block_finds_views_side_by_side_and_refuses_anything_else() -> None:
    from polytask.losses import column_block

    whole = torch.arange(60.0).reshape(12, 5)
    rows = whole[3:9]
    parts = [rows[:, 0:2], rows[:, 2:3], rows[:, 3:5]]
    block = column_block(parts)
    assert block is not None and torch.equal(block, rows) and block.data_ptr() == rows.data_ptr()
    assert column_block([rows[:, 2:3], rows[:, 0:2], rows[:, 3:5]]) is None  # out of order
    assert column_block([rows[:, 0:2], rows[:, 3:5]]) is None  # a gap
    assert column_block([rows[:, 0:2], rows[:, 2:3].clone(), rows[:, 3:5]]) is None  # another tensor
    assert column_block([whole[:, 0:2], whole[:, 2:4]]) is None  # does not cover the rows' width
    assert column_block([whole[0:6, 0:2], whole[6:12, 2:5]]) is None  # different rows


def _mixed_prepared():  # type: ignore[no-untyped-def]
    import pandas as pd

    from polytask.data.prepare import prepare

    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                          "r1": x[:, 0] + rng.normal(size=n), "k": np.where(x[:, 1] > 0, "yes", "no"),
                          "r2": x[:, 2] - x[:, 0], "m": rng.choice(["p", "q", "s"], size=n)})
    frame.loc[rng.random(n) < 0.2, "r2"] = np.nan
    return prepare(frame, ["r1", "k", "r2", "m"], seed=0)


def test_prepared_targets_pack_for_training_without_a_copy() -> None:
    """prepare lays the targets out in the loss plan's order (regressions together, then the
    classification groups), so packing them is a view of one matrix, equal to gathering them."""
    import polytask as pt
    from polytask.losses import LossPlan
    from polytask.training.packed import PackedTensors

    prepared = _mixed_prepared()
    model = pt.fit(prepared, config=pt.TrainConfig(epochs=1, seed=0))
    layout = model.mtl.network.output_layout()
    assert layout is not None
    plan = LossPlan(prepared.tasks, layout)
    packed = PackedTensors.of(prepared.train, plan)
    storage = prepared.train.targets["r1"].untyped_storage().data_ptr()
    assert packed.y.untyped_storage().data_ptr() == storage
    names = plan.target_names
    assert names == ["r1", "r2", "k", "m"]
    gathered = torch.cat([prepared.train.targets[k] for k in names], 1)
    assert torch.equal(packed.y, gathered)
    assert torch.equal(packed.m, torch.cat([prepared.train.masks[k] for k in names], 1).float())
    assert not bool(packed.m[:, 1].all())  # r2's missing labels stay masked
    replaced = dict(prepared.train.targets, r2=prepared.train.targets["r2"].clone())  # no longer side by side
    y, _ = plan.pack(replaced, prepared.train.masks)
    assert y.untyped_storage().data_ptr() != storage and torch.equal(y, gathered)
