"""Auxiliary tasks: never predicted nor needed at predict time, metrics still available,
weight schedules, and the shuffle control."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from polytask import Callback, PolytaskError, Targets, load
from polytask.auxiliary import ShuffleAux, aux_weight_schedule, shuffle_auxiliary, shuffle_columns
from polytask.losses import loss_vector
from polytask.synthetic import related_tasks
from polytask.tasks import Task
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, fit, prepare

FAST = TrainConfig(epochs=4, batch_size=64, seed=0)
SPEC = NetworkSpec(trunk=(8,))


@pytest.fixture
def frame() -> pd.DataFrame:
    data, _ = related_tasks(n_rows=160, n_features=5, n_tasks=3, seed=2)
    data["flag"] = (data["task2"] > 0).astype(int)
    return data


def test_auxiliary_columns_are_never_predicted_nor_required(frame: pd.DataFrame, tmp_path) -> None:
    report = fit(frame, Targets(["task0"], aux=["task1", "flag"]), SPEC, FAST)
    unseen = frame.drop(columns=["task0", "task1", "flag"])  # neither main nor auxiliary columns
    preds = report.mtl.predict(unseen)
    assert list(preds.columns) == ["task0"]
    assert "task1" not in report.mtl.feature_columns and "flag" not in report.mtl.feature_columns
    report.mtl.save(tmp_path / "m")
    again = load(tmp_path / "m").predict(unseen)
    np.testing.assert_allclose(again["task0"], preds["task0"], rtol=1e-6)
    # headline metrics are the main task's; the auxiliary ones stay available
    assert set(report.metrics("test")["mtl"]) == {"task0"}
    assert {"task1", "flag"} <= set(report.mtl.summary["test_metrics"])
    assert "accuracy" in report.mtl.summary["test_metrics"]["flag"]
    assert set(report.mtl.evaluate(frame, include_auxiliary=True)) == {"task0", "task1", "flag"}
    assert set(report.mtl.evaluate(frame)) == {"task0"}


def test_named_schedules_match_their_formulas() -> None:
    aux = Task("a", auxiliary=True, weight=2.0)
    main = Task("m", weight=3.0)
    lin = aux_weight_schedule("linear_decay", final=0.25)
    assert lin(aux, 0, 11) == pytest.approx(2.0)
    assert lin(aux, 5, 11) == pytest.approx(2.0 * (1 - 0.75 * 0.5))
    assert lin(aux, 10, 11) == pytest.approx(0.5)
    cos = aux_weight_schedule("cosine_decay")
    assert cos(aux, 5, 11) == pytest.approx(2.0 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert cos(aux, 10, 11) == pytest.approx(0.0, abs=1e-12)
    step = aux_weight_schedule("step", at=0.5, final=0.1)
    assert [step(aux, e, 10) for e in (0, 4, 5, 9)] == pytest.approx([2.0, 2.0, 0.2, 0.2])
    assert aux_weight_schedule("constant")(aux, 7, 10) == 2.0
    for sched in (lin, cos, step):
        assert all(sched(main, e, 10) == 3.0 for e in range(10))
    with pytest.raises(PolytaskError, match="bogus"):
        aux_weight_schedule("bogus")
    with pytest.raises(PolytaskError, match="'at'"):
        aux_weight_schedule("linear_decay", at=0.3)


def test_trainer_uses_the_schedule(frame: pd.DataFrame) -> None:
    from polytask.models import build_network
    from polytask.training import Trainer

    prepared = prepare(frame, Targets(["task0"], aux=["task1"]))
    net = build_network("hps", prepared.train.x.shape[1], prepared.output_dims, trunk=(4,))
    seen: dict[int, tuple[list[float], list[float]]] = {}

    class Record(Callback):
        def on_before_backward(self, trainer, ctx):  # type: ignore[no-untyped-def]
            raw = loss_vector(trainer.tasks, trainer.network(trainer.batch.x), trainer.batch.targets, trainer.batch.masks)
            seen[ctx.epoch] = (trainer.alphas.tolist(), (ctx.losses / raw).tolist())

    config = TrainConfig(epochs=10, early_stopping="none")
    Trainer(net, prepared.tasks, config=config, callbacks=[aux_weight_schedule("linear_decay"), Record()]).fit(prepared.train)
    assert seen[0][0] == pytest.approx([1.0, 1.0]) and seen[9][0] == pytest.approx([1.0, 0.0])
    assert seen[5][1] == pytest.approx([1.0, 1.0 - 5 / 9])  # the balancer sees alpha_t L_t
    report = fit(frame, Targets(["task0"], aux=["task1"]), SPEC, FAST, setups=[aux_weight_schedule("step", at=0.5)])
    assert report.mtl.summary["controls"]["aux_weight_schedule"] == {"name": "step", "at": 0.5}


def test_shuffle_control_permutes_is_seeded_and_leaves_main_alone(frame: pd.DataFrame) -> None:
    frame = frame.copy()
    frame.loc[::7, "task1"] = np.nan  # a missing auxiliary label must travel with its row's label
    prepared = prepare(frame, Targets(["task0"], aux=["task1", "task2"]), seed=0)
    train = prepared.train
    a = shuffle_auxiliary(train, prepared.tasks, seed=5)
    b = shuffle_auxiliary(train, prepared.tasks, seed=5)
    c = shuffle_auxiliary(train, prepared.tasks, seed=6)
    assert a.targets["task0"] is train.targets["task0"] and a.masks["task0"] is train.masks["task0"]
    assert a.x is train.x
    for name in ("task1", "task2"):
        assert not torch.equal(a.targets[name], train.targets[name])  # really moved
        assert torch.equal(a.targets[name], b.targets[name])  # seeded
        assert not torch.equal(a.targets[name], c.targets[name])
        # a permutation: same multiset of (label, mask) pairs
        pairs = sorted(zip(train.targets[name][:, 0].tolist(), train.masks[name][:, 0].tolist()))
        assert sorted(zip(a.targets[name][:, 0].tolist(), a.masks[name][:, 0].tolist())) == pairs
    # each auxiliary task gets its own permutation: rows' (task1, task2) pairs are broken up
    before = set(zip(train.targets["task1"][:, 0].tolist(), train.targets["task2"][:, 0].tolist()))
    after = set(zip(a.targets["task1"][:, 0].tolist(), a.targets["task2"][:, 0].tolist()))
    assert len(before & after) < len(before) // 2
    with pytest.raises(PolytaskError, match="auxiliary"):
        shuffle_auxiliary(train, [t for t in prepared.tasks if not t.auxiliary])


def test_shuffle_changes_training_but_not_validation(frame: pd.DataFrame) -> None:
    plain = fit(frame, Targets(["task0"], aux=["task1"]), SPEC, FAST)
    shuffled = fit(frame, Targets(["task0"], aux=["task1"]), SPEC, FAST, setups=[ShuffleAux(seed=3)])
    assert shuffled.mtl.summary["controls"]["shuffle_aux"] == {"seed": 3}
    # same split and labels for evaluation; the auxiliary training signal differs
    assert np.array_equal(plain.prepared.split.val, shuffled.prepared.split.val)
    assert plain.mtl.summary["val_metrics"].keys() == shuffled.mtl.summary["val_metrics"].keys()
    assert plain.mtl.summary["history"][-1]["train_loss"]["task1"] != shuffled.mtl.summary["history"][-1]["train_loss"]["task1"]


def test_shuffle_columns_only_touches_given_rows(frame: pd.DataFrame) -> None:
    rows = np.arange(100)
    out = shuffle_columns(frame, ["task1"], seed=1, rows=rows)
    assert out["task0"].equals(frame["task0"])
    assert out["task1"].iloc[100:].equals(frame["task1"].iloc[100:])
    assert not out["task1"].iloc[:100].equals(frame["task1"].iloc[:100])
    assert sorted(out["task1"].iloc[:100]) == sorted(frame["task1"].iloc[:100])
    with pytest.raises(PolytaskError, match="nope"):
        shuffle_columns(frame, ["nope"])


def test_cli_options(frame: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from polytask.cli import main

    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "m"
    args = ["fit", str(data), "-t", "task0", "--aux", "task1", "--epochs", "3", "--trunk", "8", "-q", "-o", str(out)]
    assert main(args + ["--aux-weight-schedule", "cosine_decay", "--aux-schedule-option", "final=0.2",
                        "--shuffle-aux", "--shuffle-seed", "4"]) == 0
    controls = json.loads((out / "report.json").read_text())["controls"]
    assert controls == {"shuffle_aux": {"seed": 4}, "aux_weight_schedule": {"name": "cosine_decay", "final": 0.2}}
    assert list(load(out).predict(frame.drop(columns=["task0", "task1"])).columns) == ["task0"]
    no_aux = ["fit", str(data), "-t", "task0", "-q", "-o", str(tmp_path / "n")]
    assert main(no_aux + ["--shuffle-aux"]) == 2
    assert main(no_aux + ["--aux-weight-schedule", "step"]) == 2
    assert main(args + ["--aux-weight-schedule", "step", "--aux-schedule-option", "speed=2"]) == 2
