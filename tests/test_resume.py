"""State in one place: a checkpoint is ``Trainer.state_dict()`` written as one file; a run
killed with SIGKILL and resumed equals the uninterrupted run bit for bit (dropout, a stateful
balancer, a stateful callback, early stopping, the STL phase); a checkpoint made by another
run is refused in one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import polytask as pt
from polytask.models import HardSharing
from polytask.training import CheckpointCallback, Trainer
from polytask.training.checkpoint import CHECKPOINT_FILE, checkpoint_epoch, load_checkpoint, save_checkpoint

RUN = r'''
import json, os, signal, sys
import pandas as pd, torch
import polytask as pt
from polytask.relate.agreement import GradientAgreement

data, ckpt, out, phase, kill_at, resume = sys.argv[1:7]
torch.set_num_threads(1)

class Kill(pt.Callback):
    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)

recorder = GradientAgreement(every=2)
callbacks = {"mtl": [recorder], "stl": []}
callbacks[phase].append(Kill())
spec = pt.NetworkSpec(trunk=(12,), dropout=0.25)
config = pt.TrainConfig(epochs=30, patience=2, batch_size=16, lr=0.05, balancer="dwa", seed=5)
report = pt.fit(pd.read_csv(data), ["task0", "task1"], spec, config, callbacks=callbacks,
                setups=[pt.Checkpoints(ckpt, resume=resume == "1"), pt.STLBaseline()])
report.mtl.save(os.path.join(out, "mtl"))
report.stl.save(os.path.join(out, "stl"))
r = recorder.recorded()
json.dump({"steps": r.steps, "values": [v.tolist() for v in r.values],
           "stopped": report.mtl.summary["stopped_early"]}, open(os.path.join(out, "records.json"), "w"))
'''


def _run(tmp_path: Path, data: Path, name: str, phase: str = "mtl", kill_at: int = -1, resume: bool = False,
         ckpt: Path | None = None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "run.py"
    script.write_text(RUN)
    out = tmp_path / name
    out.mkdir(exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(script), str(data), str(ckpt or tmp_path / f"ckpt-{name}"), str(out), phase,
            str(kill_at), "1" if resume else "0"]
    return subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)


def _same_model(a: Path, b: Path) -> None:
    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    sa, sb = (json.loads((d / "model.json").read_text())["summary"] for d in (a, b))
    for s in (sa, sb):
        s.pop("train_seconds")
    assert sa == sb


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from polytask.synthetic import related_tasks

    tmp = tmp_path_factory.mktemp("resume")
    frame, _ = related_tasks(n_rows=160, n_features=5, n_tasks=2, noise=0.3, seed=4)
    data = tmp / "d.csv"
    frame.to_csv(data, index=False)
    done = _run(tmp, data, "full")
    assert done.returncode == 0, done.stderr
    return data, tmp / "full"


@pytest.mark.parametrize("phase,kill_at", [("mtl", 2), ("stl", 3)], ids=["during-mtl", "during-stl-after-early-stop"])
def test_sigkill_then_resume_equals_the_uninterrupted_run(uninterrupted: tuple[Path, Path], tmp_path: Path,
                                                          phase: str, kill_at: int) -> None:
    data, full = uninterrupted
    records = json.loads((full / "records.json").read_text())
    if phase == "stl":
        assert records["stopped"], "the MTL run should stop early here, so its resume starts from a finished run"
    ckpt = tmp_path / "ckpt"
    killed = _run(tmp_path, data, "killed", phase, kill_at, ckpt=ckpt)
    assert killed.returncode == -signal.SIGKILL
    assert checkpoint_epoch(ckpt / phase) == kill_at - 1  # the epoch the kill interrupted was not saved
    resumed = _run(tmp_path, data, "resumed", phase, -1, resume=True, ckpt=ckpt)
    assert resumed.returncode == 0, resumed.stderr
    _same_model(full / "mtl", tmp_path / "resumed" / "mtl")
    _same_model(full / "stl", tmp_path / "resumed" / "stl")
    # the stateful callback's recording continued where it stopped
    assert json.loads((tmp_path / "resumed" / "records.json").read_text()) == records


def _problem(small_frame: pd.DataFrame) -> pt.Prepared:
    return pt.prepare(small_frame, ["task0", "task1"], seed=0)


def _trainer(p: pt.Prepared, config: pt.TrainConfig, *callbacks: pt.Callback) -> Trainer:
    torch.manual_seed(0)
    net = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))
    return Trainer(net, p.tasks, p.encoders, config, callbacks=list(callbacks))


def test_a_failed_checkpoint_write_leaves_the_previous_one_whole(small_frame: pd.DataFrame, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    p = _problem(small_frame)
    trainer = _trainer(p, pt.TrainConfig(epochs=2), CheckpointCallback(tmp_path))
    trainer.fit(p.train, p.val)
    before = (tmp_path / CHECKPOINT_FILE).read_bytes()

    def torn_write(tensors, path, metadata=None):  # type: ignore[no-untyped-def]
        Path(path).write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr("polytask.training.checkpoint.save_file", torn_write)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(trainer.state_dict(), tmp_path, trainer.checkpoint_header())
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == [CHECKPOINT_FILE]  # no temporary file left
    assert load_checkpoint(tmp_path)[0]["epoch"] == 1
    (tmp_path / CHECKPOINT_FILE).write_bytes(before[: len(before) // 2])
    with pytest.raises(pt.PolytaskError, match="is damaged"):
        load_checkpoint(tmp_path)


def test_resume_with_other_options_or_data_is_refused_naming_them(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    p = _problem(small_frame)
    config = pt.TrainConfig(epochs=2, early_stopping="none")
    _trainer(p, config, CheckpointCallback(tmp_path)).fit(p.train, p.val)
    cases = {
        "lr=0.001": (config.replace(lr=0.01), p),
        "seed=0": (config.replace(seed=3), p),
        "balancer='ew'": (config.replace(balancer="uw"), p),
        "other training data": (config, pt.prepare(small_frame, ["task0", "task1"], seed=1)),
    }
    for message, (cfg, problem) in cases.items():
        with pytest.raises(pt.PolytaskError, match="cannot resume from") as err:
            _trainer(problem, cfg).fit(problem.train, problem.val, resume_from=tmp_path)
        assert message in str(err.value) and "\n" not in str(err.value)
    torch.manual_seed(0)
    other = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(4,))
    with pytest.raises(pt.PolytaskError, match="another network"):
        Trainer(other, p.tasks, p.encoders, config).fit(p.train, p.val, resume_from=tmp_path)


def test_more_epochs_continue_the_same_run(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    p = _problem(small_frame)
    config = pt.TrainConfig(epochs=5, early_stopping="none", balancer="famo")
    full = _trainer(p, config)
    full.fit(p.train, p.val)
    _trainer(p, config.replace(epochs=3), CheckpointCallback(tmp_path)).fit(p.train, p.val)
    resumed = _trainer(p, config)
    resumed.fit(p.train, p.val, resume_from=tmp_path)
    for a, b in zip(full.network.parameters(), resumed.network.parameters(), strict=True):
        assert torch.equal(a, b)
    assert resumed.history == full.history and resumed.step == full.step


def test_state_dict_round_trip_continues_identically(small_frame: pd.DataFrame) -> None:
    p = _problem(small_frame)
    config = pt.TrainConfig(epochs=4, early_stopping="none", balancer="uw")
    a = _trainer(p, config.replace(epochs=2))
    a.fit(p.train, p.val)
    b = _trainer(p, config)
    b.fit(p.train, p.val)  # as a reference, the whole run
    c = _trainer(p, config)
    c.load_state_dict(a.state_dict())
    c.fit(p.train, p.val)
    for x, y in zip(b.network.parameters(), c.network.parameters(), strict=True):
        assert torch.equal(x, y)


def test_user_optimizer_and_scheduler_factories(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    p = _problem(small_frame)
    named = pt.TrainConfig(epochs=3, optimizer="sgd", lr=0.05, momentum=0.9, lr_schedule="step", step_size=1, gamma=0.5,
                           early_stopping="none")
    # the named optimizer is torch's in its fused implementation (equal to the default up to rounding)
    own = named.replace(optimizer_factory=lambda groups: torch.optim.SGD(groups, lr=0.05, momentum=0.9, fused=True),
                        scheduler_factory=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    a, b = _trainer(p, named), _trainer(p, own)
    a.fit(p.train, p.val)
    b.fit(p.train, p.val)
    for x, y in zip(a.network.parameters(), b.network.parameters(), strict=True):
        assert torch.equal(x, y)
    per_step = pt.TrainConfig(epochs=2, scheduler_step="step", early_stopping="none",
                              scheduler_factory=lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, 0.01, total_steps=100))
    t = _trainer(p, per_step)
    t.fit(p.train, p.val)
    assert t.scheduler.last_epoch == t.step  # advanced once per step
    with pytest.raises(pt.PolytaskError, match="not a torch.optim.Optimizer"):
        _trainer(p, pt.TrainConfig(optimizer_factory=lambda groups: "adam"))
