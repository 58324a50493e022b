"""The trainer: masking, per-task early stopping, reproducibility, STL, checkpoints, failures."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

import polytask as pt
from polytask.gradients import row_owners
from polytask.errors import DivergedLossError, NonFiniteLossError
from polytask.losses import task_loss
from polytask.models import HardSharing, SingleTaskNetworks
from polytask.training import CheckpointCallback, Trainer
from polytask.training.checkpoint import checkpoint_epoch
from polytask.workflow import prepare, train_model

FAST = dict(epochs=15, batch_size=32, lr=3e-3, seed=0)


def test_task_with_90_percent_missing_labels_trains_and_is_scored_on_labelled_rows(small_frame: pd.DataFrame) -> None:
    rng = np.random.default_rng(0)
    sparse = small_frame.copy()
    hidden = rng.random(len(sparse)) < 0.9
    sparse.loc[hidden, "task1"] = np.nan
    report = pt.fit(sparse, ["task0", "task1"], config=pt.TrainConfig(**FAST))
    model = report.mtl
    assert math.isfinite(model.summary["history"][-1]["train_loss"]["task1"])
    # metric on the labelled rows only: identical to scoring the labelled subset by hand
    labelled = sparse[sparse["task1"].notna()]
    got = model.evaluate(sparse)["task1"]["rmse"]
    pred = model.predict(labelled)["task1"].to_numpy()
    assert got == pytest.approx(float(np.sqrt(np.mean((pred - labelled["task1"].to_numpy()) ** 2))), rel=1e-5)
    # and it learned something: better than predicting the training mean
    baseline = float(np.sqrt(np.mean((labelled["task1"] - sparse["task1"].mean()) ** 2)))
    assert got < baseline


def test_per_task_early_stopping_keeps_each_tasks_own_best_epoch(small_frame: pd.DataFrame) -> None:
    p = prepare(small_frame, ["task0", "task1"], seed=0)
    model = train_model(p, config=pt.TrainConfig(epochs=25, batch_size=16, lr=2e-2, patience=25, seed=0))
    history = model.summary["history"]
    for task in ("task0", "task1"):
        curve = [h["val_loss"][task] for h in history]
        assert model.best_epoch[task] == int(np.argmin(curve))
        # predictions for the task come from its own best snapshot
        raw = model.raw_outputs(p.frame.iloc[p.split.val])[task]
        t = next(t for t in p.tasks if t.name == task)
        loss = task_loss(t, torch.from_numpy(raw), p.val.targets[task], p.val.masks[task]).item()
        assert loss == pytest.approx(min(curve), rel=1e-5)


@pytest.mark.parametrize("val_metrics", [True, False])
def test_reported_validation_metrics_are_each_tasks_own_best_epoch_snapshot_scored(mixed_frame: pd.DataFrame,
                                                                                 val_metrics: bool) -> None:
    """The summary's validation metrics are taken from the history at each task's best epoch
    (the trainer scored that very network state on those rows): they equal scoring the fitted
    model, each task from its own snapshot, afresh; with per-epoch metrics off they are scored
    afresh. Tasks of every kind (two regressions, binary, multiclass) pick different epochs."""
    from polytask.workflow import _recorded_val_metrics, split_metrics

    tasks = ["task0", "task1", "label", "grade"]
    p = prepare(mixed_frame, tasks, seed=0)
    config = pt.TrainConfig(epochs=12, batch_size=16, lr=3e-2, patience=12, seed=0, val_metrics=val_metrics)
    model = train_model(p, config=config)
    assert len(set(model.best_epoch.values())) > 1  # the snapshots matter
    reported, fresh = model.summary["val_metrics"], split_metrics(model, p.val)
    assert list(reported) == list(fresh) == tasks
    assert (_recorded_val_metrics(model) is not None) == val_metrics
    for task in tasks:
        assert reported[task] == pytest.approx(fresh[task], rel=1e-12, nan_ok=True), task
        if val_metrics:
            at_best = model.summary["history"][model.best_epoch[task]]["val_metrics"][task]
            assert reported[task] == at_best
        else:
            assert model.summary["history"][0].get("val_metrics") in (None, {})


def test_predicting_from_best_epoch_snapshots_leaves_the_network_as_it_was(small_frame: pd.DataFrame) -> None:
    """raw_outputs loads each task's snapshot in turn; afterwards every parameter and buffer
    (batch-norm statistics included) holds its value from before, and a second call agrees."""
    p = prepare(small_frame, ["task0", "task1"], seed=0)
    spec = pt.NetworkSpec(trunk=(8,), norm="batch")
    model = train_model(p, spec=spec, config=pt.TrainConfig(epochs=12, batch_size=16, lr=2e-2, patience=12, seed=0))
    with torch.no_grad():  # weights that no snapshot holds, so a load left in place would show
        for param in model.network.parameters():
            param.add_(0.5)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    frame = p.frame.iloc[p.split.val]
    first = model.raw_outputs(frame)
    after = model.network.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    second = model.raw_outputs(frame)
    assert all(np.array_equal(first[t], second[t]) for t in first)


def test_joint_early_stopping_uses_one_epoch(small_frame: pd.DataFrame) -> None:
    p = prepare(small_frame, ["task0", "task1"], seed=0)
    model = train_model(p, config=pt.TrainConfig(epochs=10, early_stopping="joint", seed=0))
    assert len(set(model.best_epoch.values())) == 1
    history = model.summary["history"]
    joint = [h["val_loss"]["task0"] + h["val_loss"]["task1"] for h in history]
    assert model.best_epoch["task0"] == int(np.argmin(joint))


def test_patience_stops_training(small_frame: pd.DataFrame) -> None:
    p = prepare(small_frame, ["task0"], seed=0)
    model = train_model(p, config=pt.TrainConfig(epochs=200, lr=5e-2, patience=3, seed=0))
    assert model.summary["stopped_early"] and model.summary["epochs_run"] < 200


def test_same_seed_same_metrics_different_seed_differs(small_frame: pd.DataFrame) -> None:
    a = pt.fit(small_frame, ["task0", "task1"], config=pt.TrainConfig(**FAST)).metrics()
    b = pt.fit(small_frame, ["task0", "task1"], config=pt.TrainConfig(**FAST)).metrics()
    c = pt.fit(small_frame, ["task0", "task1"], config=pt.TrainConfig(**{**FAST, "seed": 1})).metrics()
    assert a == b
    assert a != c


def test_training_leaves_global_rng_untouched(small_frame: pd.DataFrame) -> None:
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    pt.fit(small_frame, ["task0"], config=pt.TrainConfig(epochs=2))
    assert torch.equal(torch.rand(1), expected)


def test_stl_networks_are_independent() -> None:
    net = SingleTaskNetworks(4, {"a": 1, "b": 1}, trunk=(8,))
    assert net.shared_parameters() == []
    out_a = net(torch.randn(5, 4))["a"]
    out_a.sum().backward()
    assert all(p.grad is None for p in net.task_parameters("b"))
    counts = net.parameter_counts()
    assert counts["total"] == counts["a"] + counts["b"]


def test_stl_baseline_side_by_side_and_parameter_matching(small_frame: pd.DataFrame) -> None:
    report = pt.fit(small_frame, ["task0", "task1"], config=pt.TrainConfig(epochs=3), setups=[pt.STLBaseline(match_params=True)])
    assert set(report.metrics()) == {"mtl", "stl"}
    mtl_total = report.mtl.parameter_counts()["total"]
    stl_total = report.stl.parameter_counts()["total"]
    assert abs(stl_total - mtl_total) / mtl_total < 0.1
    assert report.stl.summary["kind"] == "stl"


def test_hard_sharing_partitions_parameters_and_accepts_a_custom_trunk() -> None:
    net = HardSharing(6, {"a": 1, "b": 3}, trunk=(16, 8), head_hidden=(4,))
    owners = row_owners([net.shared_parameters()] + [net.task_parameters(t) for t in ("a", "b")])
    assert all(bool((counts == 1).all()) for _, counts in owners)
    assert sorted(id(leaf) for leaf, _ in owners) == sorted(id(p) for p in net.parameters())
    out = net(torch.randn(7, 6))
    assert out["a"].shape == (7, 1) and out["b"].shape == (7, 3)
    custom = HardSharing(6, {"a": 1}, custom_trunk=torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh()))
    assert custom.rep_dim == 5 and custom(torch.randn(2, 6))["a"].shape == (2, 1)


def test_non_finite_loss_names_task_and_epoch_and_keeps_last_checkpoint(small_frame: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = prepare(small_frame, ["task0", "task1"], seed=0)
    net = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))

    class Explode(pt.Callback):
        def on_epoch_start(self, trainer, epoch):  # type: ignore[no-untyped-def]
            if epoch == 2:
                with torch.no_grad():
                    trainer.network.task_parameters("task1")[0].fill_(float("nan"))

    ckpt = tmp_path / "ckpt"
    trainer = Trainer(net, p.tasks, p.encoders, pt.TrainConfig(epochs=5), callbacks=[CheckpointCallback(ckpt), Explode()])
    with pytest.raises(NonFiniteLossError, match="task 'task1' at epoch 2"):
        trainer.fit(p.train, p.val)
    assert checkpoint_epoch(ckpt) == 1


def test_checkpoint_resume_matches_uninterrupted_run(small_frame: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = prepare(small_frame, ["task0", "task1"], seed=0)
    cfg = pt.TrainConfig(epochs=6, early_stopping="none", optimizer="adam", seed=0)

    def net() -> HardSharing:
        torch.manual_seed(0)
        return HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))

    full = Trainer(net(), p.tasks, p.encoders, cfg)
    full.fit(p.train, p.val)
    first = Trainer(net(), p.tasks, p.encoders, pt.TrainConfig(**{**cfg.to_dict(), "epochs": 3}), callbacks=[CheckpointCallback(tmp_path / "c")])
    first.fit(p.train, p.val)
    resumed = Trainer(net(), p.tasks, p.encoders, cfg)
    resumed.fit(p.train, p.val, resume_from=str(tmp_path / "c"))
    for a, b in zip(full.network.parameters(), resumed.network.parameters()):
        torch.testing.assert_close(a, b)
    assert len(resumed.history) == 6


def test_sgd_with_l2_and_schedule_and_clipping_trains(small_frame: pd.DataFrame) -> None:
    cfg = pt.TrainConfig(epochs=8, optimizer="sgd", lr=0.05, momentum=0.9, l2=1e-3, lr_schedule="cosine", grad_clip=1.0)
    report = pt.fit(small_frame, ["task0", "task1"], config=cfg)
    assert report.metrics()["mtl"]["task0"]["r2"] > 0.3


def test_l2_penalty_shrinks_weights(small_frame: pd.DataFrame) -> None:
    def norm(l2: float) -> float:
        model = pt.fit(small_frame, ["task0"], config=pt.TrainConfig(epochs=10, l2=l2, early_stopping="none")).mtl
        return float(sum((p.detach() ** 2).sum() for n, p in model.network.named_parameters() if p.ndim > 1))

    assert norm(0.05) < norm(0.0)


def test_cuda_request_without_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available on this machine; the error path cannot occur")
    with pytest.raises(pt.PolytaskError, match="CUDA is not available"):
        pt.fit(pd.DataFrame({"x": [1.0, 2, 3, 4, 5, 6, 7, 8], "y": [1.0, 2, 3, 4, 5, 6, 7, 8]}), ["y"], config=pt.TrainConfig(device="cuda"))


def test_a_loss_that_grows_by_orders_of_magnitude_stops_training(small_frame: pd.DataFrame) -> None:
    """Adam at lr 1e3 keeps the loss finite (it only grows, to about 1e25), so a finiteness check
    alone never stops it: the divergence check does, naming the task and suggesting a lower lr."""
    with pytest.raises(DivergedLossError, match=r"training diverged: the loss of task 'task\d' .* lower learning rate than 1000"):
        pt.fit(small_frame, ["task0", "task1"], config=pt.TrainConfig(lr=1e3, epochs=20))
    # a sane learning rate trains through
    pt.fit(small_frame, ["task0", "task1"], config=pt.TrainConfig(lr=1e-2, epochs=20))


def test_training_threads_default_to_one_for_table_networks_and_follow_the_option(small_frame: pd.DataFrame) -> None:
    from polytask.training.threads import default_threads

    seen: list[int] = []

    class Threads(pt.Callback):
        def on_epoch_start(self, trainer, epoch):  # type: ignore[no-untyped-def]
            seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    p = prepare(small_frame, ["task0"], seed=0)
    for threads, expected in ((None, 1), (2, 2)):
        seen.clear()
        net = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))
        Trainer(net, p.tasks, p.encoders, pt.TrainConfig(epochs=2, threads=threads), callbacks=[Threads()]).fit(p.train, p.val)
        assert seen == [expected, expected]
        assert torch.get_num_threads() == before  # restored after training
    assert default_threads(HardSharing(4, {"a": 1}, trunk=(2048,))) is None
    assert default_threads(HardSharing(None, {"a": 1}, input_shape=(1, 8, 8), trunk=(8,))) is None
    with pytest.raises(pt.PolytaskError, match="threads must be >= 1"):
        pt.TrainConfig(threads=0)
