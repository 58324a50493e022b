"""Resume is exact or refused.

A checkpoint is ``Trainer.state_dict()`` written as one file. A run killed with SIGKILL, at the
end of an epoch, at seeded random times, in the middle of writing a checkpoint or the model
directory, or between two renames, and then resumed (as often as it is killed) gives the
uninterrupted run's model bit for bit: with dropout, a stateful balancer and callback, early
stopping and the STL phase. A checkpoint made by another run (any option that matters, the
tasks, the network, the data) is refused in one line naming what differs."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch

import polytask as pt
from polytask.cli import main
from polytask.io import read_model_files, weights_path
from polytask.models import HardSharing
from polytask.training import CheckpointCallback, Trainer
from polytask.training.checkpoint import CHECKPOINT_FILE, checkpoint_epoch, has_checkpoint, load_checkpoint, save_checkpoint

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


def _without_timings(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def _same_model(a: Path, b: Path) -> None:
    (ma, wa), (mb, wb) = read_model_files(a), read_model_files(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    assert _without_timings(ma["summary"]) == _without_timings(mb["summary"])
    assert weights_path(a).name == weights_path(b).name  # named by content: the same bytes


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


# ------------------------------------------------ kill -9 at random moments, from the command line
#: Runs ``polytask fit`` (argv after the script name). POLYTASK_KILL="PHASE-write:N:F" kills the
#: process with SIGKILL in the N-th atomic write of the phase (once the fraction F of the temporary
#: file is written), "PHASE-rename:N" just before its N-th rename; the phases are "fit" (training:
#: the checkpoints) and "save" (writing --out). POLYTASK_COUNT=FILE records how many there were.
CLI = r'''
import atexit, json, os, signal, sys
from pathlib import Path
import polytask.io, polytask.serialization as ser, polytask.training.checkpoint as ckpt
from polytask.cli import run

counts = {"fit-write": 0, "fit-rename": 0, "save-write": 0, "save-rename": 0}
phase = ["fit"]
kind, _, rest = os.environ.get("POLYTASK_KILL", "none").partition(":")
at, _, fraction = rest.partition(":")
write, replace, save = ser.atomic_write_bytes, os.replace, polytask.io.save_model_files

def tick(what):
    key = f"{phase[0]}-{what}"
    counts[key] += 1
    return key == kind and counts[key] == int(at)

def hooked_write(path, data, token=None):
    if tick("write"):
        with open(ser.temporary_name(Path(path), token), "wb") as fh:
            fh.write(data[: int(len(data) * float(fraction))])
        os.kill(os.getpid(), signal.SIGKILL)
    return write(path, data, token)

def hooked_replace(a, b):
    if tick("rename"):
        os.kill(os.getpid(), signal.SIGKILL)
    return replace(a, b)

def hooked_save(*args, **kwargs):
    phase[0] = "save"
    return save(*args, **kwargs)

for module in (ser, polytask.io, ckpt):
    module.atomic_write_bytes = hooked_write
os.replace = hooked_replace
polytask.io.save_model_files = hooked_save  # fit imports it from polytask.io when it writes
if os.environ.get("POLYTASK_COUNT"):
    atexit.register(lambda: Path(os.environ["POLYTASK_COUNT"]).write_text(json.dumps(counts)))
sys.argv = ["polytask", *sys.argv[1:]]
run()
'''
FIT = ["-t", "task0", "-t", "task1", "--stl", "--trunk", "12", "--dropout", "0.25", "--balancer", "dwa", "--lr", "0.05",
       "--batch-size", "16", "--epochs", "40", "--patience", "3", "--seed", "5", "--quiet"]


def _cli(tmp: Path, data: Path, out: Path, ckpt: Path, kill: str = "none", count: Path | None = None,
         kill_after: float | None = None) -> int:
    script = tmp / "cli.py"
    script.write_text(CLI)
    args = [sys.executable, str(script), "fit", str(data), *FIT, "--checkpoint-dir", str(ckpt), "--out", str(out)]
    if has_checkpoint(ckpt / "mtl"):
        args.append("--resume")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "POLYTASK_KILL": kill, "POLYTASK_COUNT": str(count or "")}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=kill_after if kill_after is not None else 300)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    assert proc.returncode in (0, -signal.SIGKILL), err
    return proc.returncode


@pytest.fixture(scope="module")
def cli_reference(uninterrupted: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data, _ = uninterrupted
    tmp = tmp_path_factory.mktemp("cli")
    started = time.perf_counter()
    assert _cli(tmp, data, tmp / "out", tmp / "ckpt", count=tmp / "counts.json") == 0
    seconds = time.perf_counter() - started
    return {"data": data, "out": tmp / "out", "seconds": seconds, **json.loads((tmp / "counts.json").read_text())}


def test_kill_9_at_random_moments_then_resume_equals_the_uninterrupted_run(cli_reference: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    ref, data = cli_reference["out"], cli_reference["data"]
    assert json.loads((ref / "model.json").read_text())["summary"]["stopped_early"]  # early stopping is part of it
    rng = random.Random(18)
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    old = pt.fit(pd.read_csv(data), ["task0"], config=pt.TrainConfig(epochs=1)).mtl
    old.save(out)  # a model already at --out must survive every kill
    kills = [f"time:{rng.uniform(1.0, 0.6 * cli_reference['seconds'])}" for _ in range(2)]
    kills += [f"fit-write:{rng.randint(1, 4)}:{rng.random():.2f}", f"fit-rename:{rng.randint(1, 4)}"]
    kills += [f"save-write:{rng.randint(1, cli_reference['save-write'])}:{rng.random():.2f}"]
    kills += [f"save-rename:{rng.randint(1, cli_reference['save-rename'])}" for _ in range(3)]
    killed = 0
    for kill in kills:
        mode, _, at = kill.partition(":")
        code = _cli(tmp_path, data, out, ckpt, kill="none" if mode == "time" else kill,
                    kill_after=float(at) if mode == "time" else None)
        killed += code == -signal.SIGKILL
        loaded = pt.load(out)  # the old model or the new one, whole
        assert loaded.best_epoch == old.best_epoch or loaded.tasks != old.tasks
        if code == 0:
            break
    assert killed >= 6, kills
    if code != 0:
        assert _cli(tmp_path, data, out, ckpt) == 0
    _same_model(ref, out)
    _same_model(ref / "stl", out / "stl")
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in ref.iterdir())  # nothing left behind
    assert (out / "history.csv").read_text() == (ref / "history.csv").read_text()
    assert _without_timings(json.loads((out / "report.json").read_text())) == _without_timings(
        json.loads((ref / "report.json").read_text()))


# ------------------------------------------------------------------- refused, naming the option
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

    monkeypatch.setattr("polytask.serialization.os.fdopen", lambda fd, mode: _HalfFile(fd))
    with pytest.raises(pt.PolytaskError, match=r"could not be written \(No space left on device\); the previous one"):
        save_checkpoint(trainer.state_dict(), tmp_path, trainer.checkpoint_header())
    monkeypatch.undo()
    assert (tmp_path / CHECKPOINT_FILE).read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == [CHECKPOINT_FILE]  # no temporary file left
    assert load_checkpoint(tmp_path)[0]["epoch"] == 1
    (tmp_path / CHECKPOINT_FILE).write_bytes(before[: len(before) // 2])
    with pytest.raises(pt.PolytaskError, match="is damaged"):
        load_checkpoint(tmp_path)
    (tmp_path / CHECKPOINT_FILE).unlink()
    os.symlink("/dev/zero", tmp_path / CHECKPOINT_FILE)
    with pytest.raises(pt.PolytaskError, match="is a symbolic link"):
        load_checkpoint(tmp_path)


class _HalfFile:
    """A file that takes half of what is written, then reports a full disk."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __enter__(self) -> "_HalfFile":
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data[: len(data) // 2])
        raise OSError(28, "No space left on device")


def test_resume_with_other_options_or_data_is_refused_naming_them(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    p = _problem(small_frame)
    config = pt.TrainConfig(epochs=2, early_stopping="none")
    _trainer(p, config, CheckpointCallback(tmp_path)).fit(p.train, p.val)
    cases = {
        "lr=0.001": (config.replace(lr=0.01), p),
        "seed=0": (config.replace(seed=3), p),
        "balancer='ew'": (config.replace(balancer="uw"), p),
        "other training data": (config, pt.prepare(small_frame, ["task0", "task1"], seed=1)),
        "already run 2 epochs, this run has epochs=1": (config.replace(epochs=1), p),
    }
    for message, (cfg, problem) in cases.items():
        with pytest.raises(pt.PolytaskError, match="cannot resume from") as err:
            _trainer(problem, cfg).fit(problem.train, problem.val, resume_from=tmp_path)
        assert message in str(err.value) and "\n" not in str(err.value)
    torch.manual_seed(0)
    other = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(4,))
    with pytest.raises(pt.PolytaskError, match=r"network trunk=\[8\], this run has network trunk=\[4\]"):
        Trainer(other, p.tasks, p.encoders, config).fit(p.train, p.val, resume_from=tmp_path)
    weighted = [t.with_(weight=2.0) if t.name == "task1" else t for t in p.tasks]
    torch.manual_seed(0)
    net = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))
    with pytest.raises(pt.PolytaskError, match=r"task 'task1' weight=1.0, this run has task 'task1' weight=2.0"):
        Trainer(net, weighted, p.encoders, config).fit(p.train, p.val, resume_from=tmp_path)


def test_a_cosine_schedule_cannot_change_its_epochs(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    p = _problem(small_frame)
    config = pt.TrainConfig(epochs=2, early_stopping="none", lr_schedule="cosine")
    _trainer(p, config, CheckpointCallback(tmp_path)).fit(p.train, p.val)
    with pytest.raises(pt.PolytaskError, match="epochs=2, this run has epochs=4 .the learning-rate or auxiliary"):
        _trainer(p, config.replace(epochs=4)).fit(p.train, p.val, resume_from=tmp_path)


CHANGES = [
    ("--lr", ["--lr", "0.02"], "lr=0.01, this run has lr=0.02"),
    ("--seed", ["--seed", "4"], "seed=3, this run has seed=4"),
    ("--split-seed", ["--split-seed", "9"], "other training data"),
    ("--batch-size", ["--batch-size", "32"], "batch_size=16, this run has batch_size=32"),
    ("--balancer", ["--balancer", "uw"], "balancer='dwa', this run has balancer='uw'"),
    ("--arch", ["--arch", "mmoe"], "arch='hps', this run has arch='mmoe'"),
    ("--trunk", ["--trunk", "6"], "network trunk=[8], this run has network trunk=[6]"),
    ("--dropout", ["--dropout", "0.5"], "network dropout=0.1, this run has network dropout=0.5"),
    ("--weight", ["--weight", "task1=2"], "task 'task1' weight=1.0, this run has task 'task1' weight=2.0"),
    ("--patience", ["--patience", "7"], "patience=5, this run has patience=7"),
    ("--aux-weight-schedule", ["--aux-weight-schedule", "linear_decay"],
     "callback AuxWeightSchedule=None, this run has callback AuxWeightSchedule={'name': 'linear_decay'"),
    ("another --aux", ["--aux", "x3"], "it was made for tasks ['task0', 'task1', 'x4'], this run has"),
    ("--epochs down", ["--epochs", "1"], "already run 2 epochs, this run has epochs=1"),
]
BASE = ["-t", "task0", "-t", "task1", "--aux", "x4", "--trunk", "8", "--dropout", "0.1", "--balancer", "dwa", "--lr", "0.01",
        "--batch-size", "16", "--patience", "5", "--seed", "3", "--quiet"]


def test_resume_from_the_command_line_refuses_every_changed_option(small_frame: pd.DataFrame, tmp_path: Path,
                                                                   capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    ckpt = tmp_path / "ckpt"

    def fit(*extra: str, out: str = "m") -> tuple[int, str]:
        code = main(["fit", str(data), *BASE, "--checkpoint-dir", str(ckpt), "--out", str(tmp_path / out), *extra])
        return code, capsys.readouterr().err

    assert fit("--epochs", "2")[0] == 0
    for label, change, message in CHANGES:
        code, err = fit("--epochs", "2", "--resume", *change, out="other")
        assert code == 2 and err.count("\n") == 1 and "cannot resume from" in err and message in err, (label, err)
    assert not (tmp_path / "other").exists()
    # epochs may grow: the resumed run is the uninterrupted run with more epochs
    assert fit("--epochs", "4", "--resume", out="grown")[0] == 0
    assert main(["fit", str(data), *BASE, "--epochs", "4", "--out", str(tmp_path / "straight")]) == 0
    _same_model(tmp_path / "straight", tmp_path / "grown")


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
