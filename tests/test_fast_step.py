"""The training step's fast paths give the results of the general path, bit for bit.

Complete labels (no mask kept), task weights worked out once, EW's objective without the
product and single-copy early-stopping snapshots each skip work; every test here compares a
fast path with the general one it replaces (the general path forced by keeping an all-ones
mask, or computed by hand) and would fail if a result changed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import polytask as pt
from polytask.balancers import StepContext, get as get_balancer
from polytask.evaluate import metrics_by_task
from polytask.losses import LossPlan, OutputLayout
from polytask.models import NetworkSpec
from polytask.tasks import Task
from polytask.training import Trainer
from polytask.training.callbacks import Callback
from polytask.training.early_stopping import snapshot
from polytask.training.packed import PackedTensors
from polytask.training.step_means import BLOCK, StepMeans
from polytask.workflow import prepare, train_model

TASKS = [Task("task0"), Task("label", kind="binary"), Task("grade", kind="multiclass"), Task("task1")]


def _general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pack every mask as it is, all ones included: the step takes the masked (general) path."""
    def of(cls: type[PackedTensors], data: Any, plan: LossPlan, device: torch.device | None = None) -> PackedTensors:
        y, m = plan.pack(data.targets, data.masks)
        return cls(data.x.to(device), y.to(device), m.to(device), plan)

    monkeypatch.setattr(PackedTensors, "of", classmethod(of))


class _Record(Callback):
    """What each step ran with: whether the batch kept a mask and the presence it gave."""

    def __init__(self) -> None:
        self.masked: list[bool] = []
        self.present: list[Any] = []

    def on_before_backward(self, trainer: Trainer, ctx: StepContext) -> None:
        assert trainer.batch is not None
        self.masked.append(trainer.batch.mask is not None)
        self.present.append(None if ctx.present is None else ctx.present.tolist())


def _same(a: Any, b: Any) -> None:
    """Equal values, NaN equal to NaN; tensors equal bit for bit with the same layout."""
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride() and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b)
    else:
        assert a == b


def _fit(frame: pd.DataFrame, tasks: list[Task], balancer: str, record: _Record) -> pt.FittedModel:
    p = prepare(frame, tasks, seed=0)
    config = pt.TrainConfig(epochs=4, batch_size=32, lr=1e-2, seed=0, balancer=balancer)
    return train_model(p, config=config, callbacks=[record])


def _compare_paths(frame: pd.DataFrame, tasks: list[Task], balancer: str, monkeypatch: pytest.MonkeyPatch) -> tuple[_Record, _Record]:
    fast, general = _Record(), _Record()
    a = _fit(frame, tasks, balancer, fast)
    with monkeypatch.context() as m:
        _general_path(m)
        b = _fit(frame, tasks, balancer, general)
    _same(a.network.state_dict(), b.network.state_dict())
    _same(a.snapshots, b.snapshots)
    assert a.best_epoch == b.best_epoch
    for key in ("history", "applied_weights", "val_metrics", "test_metrics"):
        _same(a.summary[key], b.summary[key])
    assert general.masked and all(general.masked)
    return fast, general


@pytest.mark.parametrize("balancer", ["ew", "static", "dwa", "pcgrad"])
def test_complete_labels_train_exactly_as_the_masked_path(mixed_frame: pd.DataFrame, balancer: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fast, general = _compare_paths(mixed_frame, TASKS, balancer, monkeypatch)
    assert fast.masked and not any(fast.masked)  # the fast path ran
    assert all(p is None for p in fast.present)  # every task labelled and weighted
    assert all(p == [True] * len(TASKS) for p in general.present)


def test_task_weights_and_a_zero_weight_train_exactly_as_the_masked_path(mixed_frame: pd.DataFrame,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = [Task("task0", weight=2.0), Task("label", kind="binary", weight=0.0), Task("grade", kind="multiclass"),
             Task("task1", weight=0.5)]
    fast, general = _compare_paths(mixed_frame, tasks, "ew", monkeypatch)
    assert not any(fast.masked)
    assert fast.present == general.present == [[True, False, True, True]] * len(fast.present)


def test_missing_labels_keep_the_mask_and_the_presence(mixed_frame: pd.DataFrame) -> None:
    sparse = mixed_frame.copy()
    sparse.loc[np.random.default_rng(0).random(len(sparse)) < 0.97, "task1"] = np.nan
    record = _Record()
    model = _fit(sparse, TASKS, "ew", record)
    assert all(record.masked)
    # with 3% of task1 labelled, some batches of 32 have none: task1 absent there, present elsewhere
    assert [True, True, True, False] in record.present and [True] * 4 in record.present
    assert math.isfinite(model.summary["history"][-1]["val_loss"]["task1"])


def _plan_and_batch(n: int = 7) -> tuple[LossPlan, torch.Tensor, torch.Tensor]:
    """A plan whose groups interleave the tasks (mse width 2, cross-entropy, bce, sigmoid mse)."""
    tasks = [Task("a", columns=("a1", "a2")), Task("c", kind="multiclass"), Task("b", kind="binary"),
             Task("s", output="sigmoid"), Task("d", columns=("d1", "d2"))]
    layout = OutputLayout.of({"a": 2, "c": 3, "b": 1, "s": 1, "d": 2})
    plan = LossPlan(tasks, layout)
    g = torch.Generator().manual_seed(0)
    outputs = torch.randn(n, layout.width, generator=g)
    targets = {"a": torch.randn(n, 2, generator=g), "c": torch.randint(0, 3, (n, 1), generator=g).float(),
               "b": torch.randint(0, 2, (n, 1), generator=g).float(), "s": torch.rand(n, 1, generator=g),
               "d": torch.randn(n, 2, generator=g)}
    y, _ = plan.pack(targets, {k: torch.ones_like(v, dtype=torch.bool) for k, v in targets.items()})
    return plan, outputs, y


def test_the_loss_plan_without_a_mask_equals_it_with_an_all_ones_mask() -> None:
    plan, outputs, y = _plan_and_batch()
    ones = torch.ones_like(y)
    grads = []
    for masks in (None, ones):
        out = outputs.clone().requires_grad_(True)
        losses = plan(out, y, masks)
        (losses * torch.arange(1.0, 6.0)).sum().backward()
        grads.append((losses.detach(), out.grad))
    _same(grads[0], grads[1])
    _same(plan.sums(outputs, y, None), plan.sums(outputs, y, ones))
    _same(plan.label_counts(None, 7), plan.label_counts(ones))
    assert plan.label_counts(None, 7).tolist() == [14.0, 7.0, 7.0, 7.0, 14.0]
    empty = plan(outputs[:0], y[:0], None)  # no rows: every loss 0, as with an empty mask
    _same(empty, plan(outputs[:0], y[:0], ones[:0]))


@pytest.mark.parametrize("cells", [8, 27, 10_000])  # many blocks (the last one short), one block
def test_the_blockwise_loss_vector_equals_the_whole_one(cells: int) -> None:
    """Validation losses over blocks of rows (small temporaries for large sets) are the loss
    vector of the whole set, with and without a mask, a task with no label in some blocks
    included; only the order of the sums differs."""
    plan, outputs, y = _plan_and_batch(n=23)
    masks = (torch.rand(y.shape, generator=torch.Generator().manual_seed(1)) < 0.7).to(y.dtype)
    masks[:12, 1] = 0.0  # task c unlabelled in the first blocks
    for m in (None, masks):
        torch.testing.assert_close(plan.blockwise(outputs, y, m, cells=cells), plan(outputs, y, m), rtol=1e-6, atol=1e-7)
    empty = plan.blockwise(outputs[:0], y[:0], None, cells=cells)
    assert torch.equal(empty, torch.zeros(5))


def test_packing_drops_a_complete_mask_and_keeps_one_with_a_gap() -> None:
    plan, _, y = _plan_and_batch()
    x = torch.randn(7, 3)
    targets = plan.split(y)
    masks = {k: torch.ones_like(v, dtype=torch.bool) for k, v in targets.items()}

    class Data:
        def __init__(self, masks: dict[str, torch.Tensor]) -> None:
            self.x, self.targets, self.masks = x, targets, masks

    complete = PackedTensors.of(Data(masks), plan)
    assert complete.mask is None
    _same(complete.m, torch.ones_like(y))
    assert all(bool(v.all()) for v in complete.masks.values())
    batch = complete.rows(torch.tensor([4, 0, 2]))
    assert batch.mask is None and torch.equal(batch.y, y[[4, 0, 2]])
    _same(complete.label_counts(), plan.label_counts(torch.ones_like(y)))
    gap = dict(masks, b=masks["b"].clone())
    gap["b"][3] = False
    assert plan.all_observed(masks) and not plan.all_observed(gap)
    block = torch.ones(7, y.shape[1], dtype=torch.bool)  # masks side by side, as prepare lays them out
    side = plan.split(block)
    assert plan.all_observed(side)
    block[6, -1] = False  # the last task's last entry
    assert not plan.all_observed(side) and PackedTensors.of(Data(side), plan).mask is not None
    partial = PackedTensors.of(Data(gap), plan)
    assert partial.mask is not None and partial.label_counts().tolist() == [14.0, 7.0, 6.0, 7.0, 14.0]
    assert partial.rows(torch.tensor([3])).masks["b"].tolist() == [[False]]
    host_y, host_m = partial.host_labels()
    assert np.array_equal(host_m["b"][:, 0], gap["b"][:, 0].numpy()) and np.array_equal(host_y["a"], targets["a"].numpy())


def test_validation_metrics_from_the_packed_outputs_equal_the_per_task_ones(mixed_frame: pd.DataFrame) -> None:
    sparse = mixed_frame.copy()
    sparse.loc[np.random.default_rng(1).random(len(sparse)) < 0.3, "task1"] = np.nan
    p = prepare(sparse, TASKS, seed=0)
    network = NetworkSpec().build(p.train.x.shape[1], p.output_dims)
    trainer = Trainer(network, p.tasks, p.encoders, pt.TrainConfig(seed=0))
    val = trainer.pack(p.val)
    outputs, layout = trainer._predict_all(val.x)
    per_task = {k: v.numpy() for k, v in layout.split(outputs).items()}
    expected = metrics_by_task(p.encoders, per_task, {k: v.numpy() for k, v in p.val.targets.items()},
                               {k: v.numpy() for k, v in p.val.masks.items()})
    _same(trainer._val_metrics(outputs, layout, val), expected)
    scorer = trainer._scorer
    _same(trainer._val_metrics(outputs * 0.5, layout, val), metrics_by_task(
        p.encoders, {k: v.numpy() for k, v in layout.split(outputs * 0.5).items()},
        {k: v.numpy() for k, v in p.val.targets.items()}, {k: v.numpy() for k, v in p.val.masks.items()}))
    assert trainer._scorer is scorer  # the same data: its labels' part is reused
    test = trainer.pack(p.test)
    test_outputs, _ = trainer._predict_all(test.x)
    _same(trainer._val_metrics(test_outputs, layout, test), metrics_by_task(
        p.encoders, {k: v.numpy() for k, v in layout.split(test_outputs).items()},
        {k: v.numpy() for k, v in p.test.targets.items()}, {k: v.numpy() for k, v in p.test.masks.items()}))
    assert trainer._scorer[0] is test  # other data: scored with its own labels


def test_task_weights_are_worked_out_again_when_alphas_change_in_place() -> None:
    network = NetworkSpec().build(3, {"a": 1, "b": 1})
    trainer = Trainer(network, [Task("a"), Task("b")], config=pt.TrainConfig(seed=0))
    x, y = torch.randn(5, 3), torch.randn(5, 2)
    ctx, raw = trainer.packed_context(x, y, None, 0)
    assert ctx.losses is raw and ctx.present is None
    trainer.alphas[1] = 0.0  # in place
    ctx, raw = trainer.packed_context(x, y, None, 0)
    assert torch.equal(ctx.losses, raw * torch.tensor([1.0, 0.0])) and ctx.present.tolist() == [True, False]
    trainer.alphas = torch.tensor([3.0, 1.0])  # replaced
    ctx, raw = trainer.packed_context(x, y, None, 0)
    assert torch.equal(ctx.losses, raw * torch.tensor([3.0, 1.0])) and ctx.present is None


def test_equal_weighting_gives_the_gradient_of_the_weighted_sum() -> None:
    torch.manual_seed(0)
    w = torch.randn(4, 3, requires_grad=True)
    x = torch.randn(6, 4)
    def losses() -> torch.Tensor:
        return (x @ w).square().mean(0)
    ew = get_balancer("ew")
    ew.setup(["a", "b", "c"])
    applied = ew.backward(StepContext(losses(), ["a", "b", "c"], [w], {}))
    got, w.grad = w.grad.clone(), None
    (torch.ones(3) * losses()).sum().backward()
    assert torch.equal(got, w.grad) and torch.equal(applied, torch.ones(3))
    again = ew.backward(StepContext(losses().double(), ["a", "b", "c"], [w], {}))
    assert again.dtype == torch.float64 and torch.equal(again, torch.ones(3, dtype=torch.float64))  # made for the new dtype


def test_step_means_equal_the_running_sum_and_do_not_hold_what_may_change() -> None:
    g = torch.Generator().manual_seed(0)
    values = [torch.rand(3, generator=g) for _ in range(2 * BLOCK + 5)]  # three blocks, the last partial
    held, added = StepMeans(3, hold=True), StepMeans(3)
    for v in values:
        held.add(v)
        added.add(v)
    expected = (torch.stack(values).sum(0) / len(values)).tolist()
    assert held.mean() == pytest.approx(expected, rel=1e-6) and added.mean() == pytest.approx(expected, rel=1e-6)
    assert held.count == added.count == len(values)
    weights = torch.ones(3)  # a balancer's own parameter, changed in place after the step
    means = StepMeans(3)
    means.add(weights)
    weights.mul_(5.0)
    means.add(torch.full((1, 3), 2.0, dtype=torch.float64))  # other shape and dtype: converted
    assert means.mean() == [1.5, 1.5, 1.5]
    assert StepMeans(2).mean() == [0.0, 0.0]


@pytest.mark.parametrize("arch", ["hps", "mmoe"])
def test_an_early_stopping_snapshot_equals_a_copy_of_the_state_dict(arch: str) -> None:
    torch.manual_seed(0)
    network = NetworkSpec(arch=arch).build(5, {"a": 1, "b": 3, "c": 1})
    expected = {k: v.detach().clone() for k, v in network.state_dict().items()}
    got = snapshot(network)
    _same(got, expected)
    assert not any(v.requires_grad for v in got.values())
    with torch.no_grad():
        for p in network.parameters():
            p.add_(1.0)
    _same(got, expected)  # copies, not views of the parameters
