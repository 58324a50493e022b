"""Data-parallel training on torch.distributed (gloo, 2 processes started here by torchrun):
2 processes with batch size 32 train the same model, to 1e-5 in float64 after 9 steps, as one
process with batch size 64 on the union of their batches, for loss weighting, aggregation in
both modes, seeded methods and the methods that reduce gradients themselves, also when a task
is labelled on one process's shard only (presence is global); a resumed
2-process run equals the uninterrupted one; under ``torchrun -m polytask fit`` rank 0 alone
writes the model directory, which records 2 processes and which ``polytask predict`` loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from distributed_run import EMPTY_SHARD_SPECS, PRESENCE_SPECS, SPECS, key, train
from polytask.cli import app as cli_main
from polytask.errors import PolytaskError
from polytask.training.checkpoint import load_checkpoint
from polytask.training.trainer import check_same_run

HERE = Path(__file__).parent
TIMEOUT = 600  # seconds for one torchrun launch (2 processes, on 2 shared cores)


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    """Every spec trained by 2 processes (one launch, one process group)."""
    out = tmp_path_factory.mktemp("dp")
    proc = torchrun([str(HERE / "distributed_run.py"), str(out)], cwd=out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return [torch.load(out / f"rank{r}.pt") for r in range(2)], out


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize(("name", "options"), SPECS, ids=[key(n, o) for n, o in SPECS])
def test_two_processes_equal_one_process_on_the_union_of_batches(ranks: Any, name: str, options: dict[str, Any]) -> None:
    results, _ = ranks
    one = train(name, options, batch_size=64)
    k = key(name, options)
    for r in results:
        assert r[k]["processes"] == 2
        assert max_difference(r[k]["params"], one["params"]) < 1e-5
        for got, want in zip(r[k]["val_loss"] + r[k]["train_loss"], one["val_loss"] + one["train_loss"]):
            assert got.keys() == want.keys()
            assert all(abs(got[t] - want[t]) < 1e-5 for t in got)
        for got, want in zip(r[k]["weights"], one["weights"]):
            assert all(abs(got[t] - want[t]) < 1e-5 for t in got)
    # every process holds the very same model
    assert all(torch.equal(results[0][k]["params"][p], results[1][k]["params"][p]) for p in one["params"])


@pytest.mark.parametrize(("name", "options"), EMPTY_SHARD_SPECS, ids=[key(n, o) for n, o in EMPTY_SHARD_SPECS])
def test_a_process_with_an_empty_shard_takes_part(ranks: Any, name: str, options: dict[str, Any]) -> None:
    """129 rows: the last global batch of each epoch has one row, and rank 1 none."""
    results, _ = ranks
    one = train(name, options, batch_size=64, rows=129)
    for r in results:
        assert max_difference(r["129-" + key(name, options)]["params"], one["params"]) < 1e-5


@pytest.mark.parametrize(("name", "options"), PRESENCE_SPECS, ids=[key(n, o) for n, o in PRESENCE_SPECS])
def test_a_task_labelled_on_one_process_only_is_present_on_both(ranks: Any, name: str, options: dict[str, Any]) -> None:
    """Task c has three labels: a batch holding one has it on one shard only. It is present on
    every process (the label counts are added over processes), so the weights and the model are
    those of one process; a mask from the local counts left c out on one process and failed."""
    results, _ = ranks
    one = train(name, options, batch_size=64, sparse=True)
    k = "sparse-" + key(name, options)
    for r in results:
        assert max_difference(r[k]["params"], one["params"]) < 1e-5
        for got, want in zip(r[k]["weights"], one["weights"]):
            assert all(abs(got[t] - want[t]) < 1e-5 for t in got)
    assert all(torch.equal(results[0][k]["params"][p], results[1][k]["params"][p]) for p in one["params"])


def test_fused_heads_take_a_batch_of_no_rows() -> None:
    """An empty shard runs the network on zero rows (hidden fused heads reshaped with -1 failed)."""
    from polytask.models import HardSharing

    net = HardSharing(5, {"a": 1, "b": 3}, trunk=(8,), head_hidden=(4, 2))
    x = torch.zeros(0, 5)
    out, layout = net.decode_packed(net.encode(x), x)
    assert out.shape == (0, 4) and layout.width == 4


def test_the_batch_size_is_per_process(ranks: Any) -> None:
    """The comparison above can fail: one process at the per-process batch size trains another model."""
    results, _ = ranks
    assert max_difference(results[0]["upgrad-exact"]["params"], train("upgrad", {"mode": "exact"}, 32)["params"]) > 1e-3


def test_a_resumed_two_process_run_equals_the_uninterrupted_one(ranks: Any) -> None:
    results, out = ranks
    for r in results:  # equal to the last bits, or nearly (one unit of float64 rounding was seen)
        assert max_difference(r["resumed"]["params"], r["uninterrupted"]["params"]) < 1e-12
        for got, want in zip(r["resumed"]["val_loss"], r["uninterrupted"]["val_loss"]):
            assert all(abs(got[t] - want[t]) < 1e-12 for t in got)
    # the ranks drew different dropout masks, and still hold one model
    assert max_difference(results[0]["resumed"]["params"], results[1]["resumed"]["params"]) == 0.0
    header, _ = load_checkpoint(out / "checkpoint")
    assert header["processes"] == 2 and header["epoch"] == 1


def test_a_checkpoint_of_two_processes_is_not_resumed_by_one(ranks: Any) -> None:
    _, out = ranks
    header, _ = load_checkpoint(out / "checkpoint")
    with pytest.raises(PolytaskError, match="made by 2 processes, this run has 1"):
        check_same_run(header, {**header, "processes": 1}, out / "checkpoint")
    check_same_run(header, dict(header), out / "checkpoint")  # the same run resumes


def _frame(n: int = 160) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(4)])
    frame["y1"] = x @ [1.0, -0.5, 0.2, 0.0] + 0.1 * rng.normal(size=n)
    frame["y2"] = (x[:, 1] + x[:, 2] > 0).astype(int)
    return frame


def test_torchrun_fit_rank0_writes_the_model_and_predict_loads_it(tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    _frame().to_csv(data, index=False)
    common = ["fit", str(data), "-t", "y1", "-t", "y2", "--epochs", "3", "--trunk", "8", "--balancer", "upgrad",
              "--quiet", "--threads", "1"]
    proc = torchrun(["-m", "polytask", *common, "--batch-size", "16", "--out", "two"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "two"]  # no second or staged directory
    model = json.loads((tmp_path / "two" / "model.json").read_text())
    assert model["summary"]["processes"] == 2
    runner = CliRunner()
    one = runner.invoke(cli_main, [*common, "--batch-size", "32", "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    for name in ("one", "two"):
        res = runner.invoke(cli_main, ["predict", str(tmp_path / name), str(data), "-o", str(tmp_path / f"{name}.csv")])
        assert res.exit_code == 0, res.output
    two_pred, one_pred = pd.read_csv(tmp_path / "two.csv"), pd.read_csv(tmp_path / "one.csv")
    assert list(two_pred.columns) == list(one_pred.columns)
    np.testing.assert_allclose(two_pred.select_dtypes("number"), one_pred.select_dtypes("number"), atol=1e-4)


@pytest.mark.parametrize("command", ["compare", "relate", "predict", "demo"])
def test_commands_other_than_fit_refuse_to_run_under_torchrun(command: str, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Under torchrun every process would repeat the whole command and its writes; only fit
    trains across processes, so the others stop with one line before doing anything."""
    from polytask.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main([command, "--help"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: 'polytask {command}' runs in one process") and "WORLD_SIZE=2" in err
    assert "Traceback" not in err and err.count("\n") == 1
    assert main(["fit", "--help"]) == 0
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main([command, "--help"]) == 0
