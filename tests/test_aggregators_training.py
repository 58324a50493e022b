"""Every gradient-aggregation method trains end to end in each of its modes; stateful ones resume
from checkpoints; the CLI lists them and accepts their options."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

import polytask as pt
from polytask import balancers
from polytask.cli import main
from polytask.models import HardSharing
from polytask.training import Callback, CheckpointCallback, Trainer
from polytask.training.checkpoint import load_checkpoint
from polytask.workflow import prepare

GRADIENT_METHODS = [n for n in balancers.names() if balancers.modes(n)]
RUNS = [(n, m) for n in GRADIENT_METHODS for m in balancers.modes(n)]


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    from polytask.synthetic import related_tasks

    data, _ = related_tasks(n_rows=120, n_features=5, n_tasks=2, noise=0.1, seed=1)
    return data


def test_every_issue_method_is_registered() -> None:
    expected = {"mgda", "pcgrad", "gradvac", "graddrop", "cagrad", "imtl_g", "nash_mtl", "aligned_mtl", "upgrad",
                "dualproj", "fairgrad", "excess_mtl", "config", "sdmgrad", "moco", "mean", "sum"}
    assert expected <= set(GRADIENT_METHODS)


@pytest.mark.parametrize(("name", "mode"), RUNS, ids=[f"{n}-{m}" for n, m in RUNS])
def test_method_trains_two_tasks_without_nan(frame: pd.DataFrame, name: str, mode: str) -> None:
    config = pt.TrainConfig(epochs=2, batch_size=32, lr=3e-3, seed=0, balancer=name, balancer_options={"mode": mode})
    report = pt.fit(frame, ["task0", "task1"], spec=pt.NetworkSpec(trunk=(16, 8)), config=config)
    summary = report.mtl.summary
    first, last = summary["history"][0], summary["history"][-1]
    for h in (first, last):
        assert all(math.isfinite(v) for v in h["train_loss"].values())
        assert all(math.isfinite(v) for v in h["weights"].values())
    assert summary["balancer"] == name
    # something moved: the parameters were updated with a finite gradient every step
    assert last["train_loss"] != first["train_loss"]


def _trainer(p, balancer: str, options: dict, epochs: int, callbacks=()):  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))
    cfg = pt.TrainConfig(epochs=epochs, batch_size=16, early_stopping="none", seed=0, balancer=balancer, balancer_options=options)
    return Trainer(net, p.tasks, p.encoders, cfg, callbacks=list(callbacks))


class Presence(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, dict[str, torch.Tensor]]] = []

    def on_before_backward(self, trainer, ctx) -> None:  # type: ignore[no-untyped-def]
        assert trainer.batch is not None
        self.seen.append((ctx.present.clone(), {t: m.clone() for t, m in trainer.batch.masks.items()}))


@pytest.fixture(scope="module")
def sparse_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """task1 labelled on 1 row in 8 only: many batches of 4 have no task1 label."""
    out = frame.copy()
    out.loc[out.index % 8 != 0, "task1"] = float("nan")
    return out


def test_the_trainer_marks_a_task_present_when_its_batch_mask_has_a_label(sparse_frame: pd.DataFrame) -> None:
    p = prepare(sparse_frame, ["task0", "task1"], seed=0)
    spy = Presence()
    torch.manual_seed(0)
    net = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))
    cfg = pt.TrainConfig(epochs=1, batch_size=4, seed=0, balancer="mgda")
    Trainer(net, p.tasks, p.encoders, cfg, callbacks=[spy]).fit(p.train, p.val)
    absent = 0
    for present, masks in spy.seen:
        expected = torch.tensor([bool(masks[t].any()) for t in ("task0", "task1")])
        assert torch.equal(present, expected)
        absent += int((~present).sum())
    assert absent > 0  # the data did produce batches without task1 labels


@pytest.mark.parametrize(("name", "mode"), RUNS, ids=[f"{n}-{m}" for n, m in RUNS])
def test_method_trains_when_a_task_is_missing_from_most_batches(sparse_frame: pd.DataFrame, name: str, mode: str) -> None:
    """Absent tasks come from the masks: every method keeps training (MGDA no longer needs a
    zero-row heuristic, and no method sees an absent task as a zero gradient)."""
    config = pt.TrainConfig(epochs=2, batch_size=4, lr=3e-3, seed=0, balancer=name, balancer_options={"mode": mode})
    summary = pt.fit(sparse_frame, ["task0", "task1"], spec=pt.NetworkSpec(trunk=(8,)), config=config).mtl.summary
    first, last = summary["history"][0], summary["history"][-1]
    assert all(math.isfinite(v) for h in (first, last) for v in [*h["train_loss"].values(), *h["weights"].values()])
    assert last["train_loss"]["task0"] != first["train_loss"]["task0"]


@pytest.mark.parametrize(("name", "options"), [("gradvac", {"beta": 0.3}), ("nash_mtl", {"update_weights_every": 4}),
                                              ("pcgrad", {"seed": 3}), ("excess_mtl", {}), ("moco", {}), ("sdmgrad", {}),
                                              ("graddrop", {"seed": 2})])
def test_checkpoint_resume_restores_method_state(frame: pd.DataFrame, tmp_path: Path, name: str, options: dict) -> None:
    p = prepare(frame, ["task0", "task1"], seed=0)
    full = _trainer(p, name, options, 4)
    full.fit(p.train, p.val)
    first = _trainer(p, name, options, 2, [CheckpointCallback(tmp_path / "c")])
    first.fit(p.train, p.val)
    resumed = _trainer(p, name, options, 4)
    resumed.fit(p.train, p.val, resume_from=str(tmp_path / "c"))
    for a, b in zip(full.network.parameters(), resumed.network.parameters()):
        assert torch.equal(a, b)  # bit-identical to the uninterrupted run
    # the checkpoint carried the method's state (not a fresh one)
    _, state = load_checkpoint(tmp_path / "c")
    saved, fresh = state["balancer"]["_extra_state"], balancers.get(name, **options).get_extra_state()
    assert saved.keys() == fresh.keys()
    assert any(differs(saved[k], fresh[k]) for k in fresh)


def differs(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() != b.keys() or any(differs(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return a.shape != b.shape or not torch.equal(a, b.to(a.dtype))
    return a != b


def test_state_dict_round_trip_continues_identically() -> None:
    J = torch.randn(3, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for name, options in [("gradvac", {}), ("nash_mtl", {"update_weights_every": 3}), ("excess_mtl", {}), ("sdmgrad", {"n_iter": 1}), ("moco", {})]:
        a = balancers.get(name, **options)
        for k in range(2):
            a.aggregate(J * (k + 1))
        b = balancers.get(name, **options)
        b.load_state_dict(a.state_dict())
        for k in range(3):
            Jk = J.flip(0) * (k + 2)
            torch.testing.assert_close(a.aggregate(Jk), b.aggregate(Jk), msg=name)
        c = balancers.get(name, **options)  # without the state the trajectory differs
        assert not torch.allclose(c.aggregate(J), a.aggregate(J)), name


def run(args: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_lists_every_method_with_kind_modes_and_options(capsys) -> None:  # type: ignore[no-untyped-def]
    code, out, err = run(["balancers", "--json"], capsys)
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == set(balancers.names())
    assert rows["nash_mtl"]["kind"] == "gradient aggregation"
    assert rows["nash_mtl"]["modes"] == ["exact", "representation"]
    assert rows["nash_mtl"]["options"]["update_weights_every"] == 1
    assert rows["excess_mtl"]["modes"] == ["exact"]
    assert rows["ew"]["kind"] == "loss weighting" and rows["ew"]["modes"] == []
    code, out, err = run(["balancers"], capsys)
    assert code == 0 and "upgrad" in out  # a listing is a result: stdout


def test_cli_fit_with_a_gradient_method_in_representation_mode(frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    code, out, err = run(["fit", data, "-t", "task0", "-t", "task1", "--balancer", "nash_mtl", "--balancer-option",
                          "mode=representation", "--balancer-option", "update_weights_every=2", "--epochs", "2",
                          "--trunk", "8", "--out", tmp_path / "m", "--json", "--quiet"], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert report["mtl"]["balancer"] == "nash_mtl"
    code, _, err = run(["fit", data, "-t", "task0", "-t", "task1", "--balancer", "excess_mtl", "--balancer-option",
                        "mode=representation", "--out", tmp_path / "m2", "--quiet"], capsys)
    assert code == 2 and "cannot run in mode 'representation'" in err
