"""The model directory: round trip, no pickles, a unit that is never mixed, never lost and never
takes the user's files; output paths checked before training; the umask; damaged directories;
non-finite predictions."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import polytask as pt
import polytask.io
from polytask.cli import main
from polytask.io import META_FILE, ModelFiles, read_meta, save_model_files, weights_path
from polytask.models import NetworkSpec
from polytask.synthetic import related_tasks
from polytask.training.checkpoint import CHECKPOINT_FILE

FAST = ["--epochs", "3", "--trunk", "8", "--quiet"]


@pytest.fixture
def trained(mixed_frame: pd.DataFrame) -> pt.FittedModel:
    return pt.fit(mixed_frame, pt.Targets(["task0", "label", "grade"], aux=["task1"]), config=pt.TrainConfig(epochs=6, seed=2)).mtl


@pytest.fixture(scope="module")
def two_models() -> tuple[pd.DataFrame, pt.FitReport, pt.FitReport]:
    frame, _ = related_tasks(n_rows=120, n_features=4, n_tasks=2, noise=0.3, seed=7)
    fits = [pt.fit(frame, ["task0", "task1"], NetworkSpec(trunk=(6,)), pt.TrainConfig(epochs=3, seed=s),
                   setups=[pt.STLBaseline()]) for s in (1, 2)]
    return frame, fits[0], fits[1]


def run(args: list[object], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def same_outputs(a: pt.FittedModel, b: pt.FittedModel, frame: pd.DataFrame) -> bool:
    x, y = a.raw_outputs(frame), b.raw_outputs(frame)
    return x.keys() == y.keys() and all(np.array_equal(x[t], y[t]) for t in x)


def test_round_trip_predictions_are_bit_identical(trained: pt.FittedModel, mixed_frame: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    trained.save(tmp_path / "m")
    loaded = pt.load(tmp_path / "m")
    assert same_outputs(trained, loaded, mixed_frame)
    pd.testing.assert_frame_equal(trained.predict(mixed_frame), loaded.predict(mixed_frame))
    assert loaded.tasks == trained.tasks and loaded.best_epoch == trained.best_epoch


def test_predictions_hold_main_tasks_only(trained: pt.FittedModel, mixed_frame: pd.DataFrame) -> None:
    preds = trained.predict(mixed_frame.drop(columns=["task1", "task0", "label", "grade"]))
    assert "task1" not in preds.columns
    assert {"task0", "label", "label:proba_no", "label:proba_yes", "grade"} <= set(preds.columns)
    probs = preds[[c for c in preds.columns if c.startswith("grade:proba_")]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_directory_holds_no_pickle_and_the_weights_checksum(trained: pt.FittedModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = trained.save(tmp_path / "m")
    weights = weights_path(d)
    assert sorted(p.name for p in d.iterdir()) == sorted([META_FILE, weights.name])
    meta = json.loads((d / META_FILE).read_text())
    assert meta["format"] == "polytask-model" and meta["format_version"] == 2
    assert meta["versions"]["torch"] == torch.__version__ and meta["arch"] == "hps"
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert meta["weights"] == {"file": f"weights-{digest[:16]}.safetensors", "bytes": weights.stat().st_size, "sha256": digest}
    assert b"\x80\x04" not in weights.read_bytes()[:8]  # not a pickle protocol header


def test_save_refuses_foreign_directories_and_foreign_model_json(trained: pt.FittedModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    other = tmp_path / "docs"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(pt.PolytaskError, match="is not empty and holds no polytask model"):
        trained.save(other)
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]
    # another tool's model.json beside a user's script is recognised by its content, not its name
    (other / "train.py").write_text("print('mine')")
    (other / META_FILE).write_text(json.dumps({"framework": "other", "layers": 3}))
    with pytest.raises(pt.PolytaskError, match="holds a 'model.json' that is not a polytask model's"):
        trained.save(other)
    assert sorted(p.name for p in other.iterdir()) == ["model.json", "notes.txt", "train.py"]
    assert (other / "train.py").read_text() == "print('mine')"
    (tmp_path / "file").write_text("x")
    with pytest.raises(pt.PolytaskError, match="exists and is not a directory"):
        trained.save(tmp_path / "file")


def test_fit_refuses_a_foreign_model_json_before_training_and_keeps_everything(small_frame: pd.DataFrame, tmp_path: Path,
                                                                             capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    out = tmp_path / "project"
    out.mkdir()
    (out / "train.py").write_text("print('mine')")
    (out / META_FILE).write_text('{"another": "tool"}')
    monkeypatch.setattr("polytask.workflow.fit", _no_training)
    code, _, err = run(["fit", data, "-t", "task0", "--out", out, *FAST], capsys)
    assert code == 2 and err.count("\n") == 1 and "not a polytask model's; refusing to replace it" in err
    assert sorted(p.name for p in out.iterdir()) == ["model.json", "train.py"]
    assert (out / META_FILE).read_text() == '{"another": "tool"}'


def _no_training(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise AssertionError("training started before the output paths were checked")


def test_refitting_keeps_the_users_files_and_removes_only_polytasks(small_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    out = tmp_path / "m"
    assert run(["fit", data, "-t", "task0", "-t", "task1", "--stl", "--out", out, *FAST], capsys)[0] == 0
    first = weights_path(out)
    (out / "notes.md").write_text("my notes")
    (out / "stl" / "mine.txt").write_text("mine too")
    assert run(["fit", data, "-t", "task0", "-t", "task1", "--seed", "3", "--out", out, *FAST], capsys)[0] == 0
    # the second fit has no --stl: the old baseline's files go, the user's file and so stl/ stay
    assert sorted(p.name for p in out.iterdir()) == sorted(["history.csv", META_FILE, "notes.md", "report.json", "stl",
                                                            weights_path(out).name])
    assert first != weights_path(out) and not first.exists()
    assert [p.name for p in (out / "stl").iterdir()] == ["mine.txt"]
    assert (out / "notes.md").read_text() == "my notes"
    pt.load(out)
    # a file of the user's under a name fit writes is never replaced
    plain = tmp_path / "plain"
    pt.load(out).save(plain)
    (plain / "report.json").write_text("my report")
    code, _, err = run(["fit", data, "-t", "task0", "--out", plain, *FAST], capsys)
    assert code == 2 and "'report.json' there was not written by polytask" in err
    assert (plain / "report.json").read_text() == "my report"


def test_out_dot_writes_the_model_in_place_and_refits_it(small_frame: pd.DataFrame, tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                         monkeypatch) -> None:
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    for seed in ("1", "2"):
        code, _, err = run(["fit", data, "-t", "task0", "--seed", seed, "--out", ".", *FAST], capsys)
        assert code == 0, err
        assert pt.load(".").train_config["seed"] == int(seed)
    assert sorted(p.name for p in here.iterdir()) == sorted(["history.csv", META_FILE, "report.json", weights_path(".").name])
    # a working directory holding other files is not a model directory: refused before training
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("polytask.workflow.fit", _no_training)
    code, _, err = run(["fit", data, "-t", "task0", "--out", ".", *FAST], capsys)
    assert code == 2 and "is not empty and holds no polytask model" in err


class Crash(BaseException):
    """A process dying at this point: nothing after it runs, no cleanup either."""


def _crash_at(monkeypatch: pytest.MonkeyPatch, step: int) -> dict[str, int]:
    """Die at the ``step``-th rename or removal of a file from now on."""
    calls = {"n": 0}
    replace, unlink = os.replace, Path.unlink

    def tick() -> None:
        calls["n"] += 1
        if calls["n"] == step:
            raise Crash

    monkeypatch.setattr(os, "replace", lambda a, b: (tick(), replace(a, b))[1])
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: (tick(), unlink(self, missing_ok=missing_ok))[1])
    monkeypatch.setattr(polytask.io, "_abandon", lambda *args: None)
    return calls


def _fit_files(report: pt.FitReport) -> ModelFiles:
    stl = ModelFiles(*report.stl.to_files(), files={"history.csv": lambda p: p.write_text("stl history")})
    return ModelFiles(*report.mtl.to_files(), files={"report.json": lambda p: p.write_text(str(report.mtl.best_epoch))},
                      models={"stl": stl})


def test_a_crash_at_every_step_of_a_save_leaves_the_old_or_the_new_model(two_models, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    frame, old, new = two_models
    base = tmp_path / "base"
    first = _fit_files(old)
    save_model_files(base, first.meta, first.tensors, first.files, first.models)
    (base / "mine.txt").write_text("mine")
    second = _fit_files(new)
    seen = set()
    for step in range(1, 100):
        d = tmp_path / f"crash{step}"
        shutil.copytree(base, d)
        with monkeypatch.context() as m:
            calls = _crash_at(m, step)
            try:
                save_model_files(d, second.meta, second.tensors, second.files, second.models)
                finished = True
            except Crash:
                finished = False
        mtl, stl = pt.load(d), pt.load(d / "stl")
        which = "new" if same_outputs(mtl, new.mtl, frame) else "old"
        assert same_outputs(mtl, (new if which == "new" else old).mtl, frame), step
        assert same_outputs(stl, new.stl, frame) or same_outputs(stl, old.stl, frame), step
        seen.add(which)
        save_model_files(d, second.meta, second.tensors, second.files, second.models)  # the next save cleans up
        assert sorted(p.name for p in d.iterdir()) == sorted(["mine.txt", META_FILE, "report.json", "stl",
                                                              weights_path(d).name]), step
        assert sorted(p.name for p in (d / "stl").iterdir()) == sorted(["history.csv", META_FILE, weights_path(d / "stl").name])
        if finished:
            break
    assert finished and calls["n"] == step - 1 >= 8 and seen == {"old", "new"}


def test_the_first_save_interrupted_leaves_a_directory_the_next_save_takes(two_models, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    frame, old, _ = two_models
    d = tmp_path / "m"
    with monkeypatch.context() as m:
        _crash_at(m, 2)  # after the first model.json (the names about to be written), before the weights
        with pytest.raises(Crash):
            old.mtl.save(d)
    with pytest.raises(pt.PolytaskError, match="holds no complete model: a save into it was interrupted"):
        pt.load(d)
    old.mtl.save(d)
    assert sorted(p.name for p in d.iterdir()) == sorted([META_FILE, weights_path(d).name])
    assert "pending" not in read_meta(d) and same_outputs(pt.load(d), old.mtl, frame)


def test_a_failed_save_changes_nothing(two_models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    frame, old, new = two_models
    d = old.mtl.save(tmp_path / "m")
    before = {p.name: p.read_bytes() for p in d.iterdir()}

    def disk_full(path: Path) -> None:
        raise OSError(28, "No space left on device")

    with pytest.raises(pt.PolytaskError, match=r"could not be written \(No space left on device\); it is left as it was"):
        save_model_files(d, *new.mtl.to_files(), files={"report.json": disk_full})
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    with pytest.raises(pt.PolytaskError, match="No space left"):
        save_model_files(tmp_path / "fresh", *new.mtl.to_files(), files={"report.json": disk_full})
    assert not (tmp_path / "fresh").exists()


def test_a_format_1_directory_is_replaced_with_its_own_files_only(two_models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    frame, old, new = two_models
    d = tmp_path / "legacy"
    shutil.copytree(Path(__file__).parent / "fixtures" / "legacy_models" / "hps", d)
    for name in ("history.csv", "report.json", "mine.txt"):
        (d / name).write_text(name)
    assert read_meta(d)["format_version"] == 1
    new.mtl.save(d)
    assert sorted(p.name for p in d.iterdir()) == sorted(["mine.txt", META_FILE, weights_path(d).name])
    assert same_outputs(pt.load(d), new.mtl, frame)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_output_files_honour_the_umask(small_frame: pd.DataFrame, tmp_path: Path, capsys, mask: int) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    old = os.umask(mask)
    try:
        code, _, err = run(["fit", data, "-t", "task0", "--stl", "--checkpoint-dir", tmp_path / "ckpt", "--log",
                            f"csv:{tmp_path / 'logs' / 'log.csv'}", "--out", tmp_path / "m", *FAST], capsys)
        assert code == 0, err
        assert run(["predict", tmp_path / "m", data, "--out", tmp_path / "preds.csv", "--quiet"], capsys)[0] == 0
    finally:
        os.umask(old)
    written = [p for top in ("m", "ckpt", "logs") for p in [tmp_path / top, *(tmp_path / top).rglob("*")]]
    written.append(tmp_path / "preds.csv")
    assert tmp_path / "ckpt" / "stl" / CHECKPOINT_FILE in written and tmp_path / "m" / "stl" / "history.csv" in written
    for path in written:
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert (path.stat().st_mode & 0o777) == want, (path, oct(path.stat().st_mode))


BAD_PATHS = [
    ("--out under a file", lambda t: ["--out", t / "afile" / "m"], "--out '{t}/afile/m' cannot be created: '{t}/afile' is not a directory"),
    ("--out is a file", lambda t: ["--out", t / "afile"], "--out '{t}/afile' exists and is not a directory"),
    ("--checkpoint-dir is a file", lambda t: ["--out", t / "m", "--checkpoint-dir", t / "afile"],
     "--checkpoint-dir '{t}/afile' exists and is not a directory"),
    ("--checkpoint-dir inside --out", lambda t: ["--out", t / "m", "--checkpoint-dir", t / "m" / "ckpt"],
     "--checkpoint-dir '{t}/m/ckpt' is inside --out"),
    ("--log file is a directory", lambda t: ["--out", t / "m", "--log", f"csv:{t}"], "--log '{t}' exists and is a directory"),
    ("--log under a file", lambda t: ["--out", t / "m", "--log-file", t / "afile" / "log.jsonl"],
     "--log '{t}/afile/log.jsonl' cannot be created: '{t}/afile' is not a directory"),
    ("--log inside --out", lambda t: ["--out", t / "m", "--log", f"tensorboard:{t / 'm' / 'tb'}"], "is inside --out"),
]


@pytest.mark.parametrize("label,args,message", BAD_PATHS, ids=[b[0] for b in BAD_PATHS])
def test_bad_output_paths_fail_in_one_line_before_training(small_frame: pd.DataFrame, tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                           monkeypatch, label: str, args, message: str) -> None:
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    (tmp_path / "afile").write_text("x")
    monkeypatch.setattr("polytask.workflow.fit", _no_training)
    code, _, err = run(["fit", data, "-t", "task0", *args(tmp_path), *FAST], capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert message.format(t=tmp_path) in err
    assert (tmp_path / "afile").read_text() == "x" and not (tmp_path / "m").exists()


def _edit_meta(d: Path, change) -> None:  # type: ignore[no-untyped-def]
    meta = json.loads((d / META_FILE).read_text())
    change(meta)
    (d / META_FILE).write_text(json.dumps(meta))


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda d: weights_path(d).unlink(), r"incomplete: 'weights-[0-9a-f]{16}\.safetensors' is missing"),
        (lambda d: (d / META_FILE).unlink(), "incomplete: 'model.json' is missing"),
        (lambda d: (d / META_FILE).write_text("{not json"), "'model.json' is not valid JSON"),
        (lambda d: weights_path(d).write_bytes(b"garbage" * 10), "does not match the size and SHA-256"),
        (lambda d: _edit_meta(d, lambda m: m.pop("arch")), "lacks 'arch'"),
        (lambda d: (d / META_FILE).write_text(json.dumps({"format": "polytask-model", "format_version": 9})), "newer polytask"),
    ],
)
def test_damaged_directories_give_clear_errors(trained: pt.FittedModel, tmp_path, damage, message) -> None:  # type: ignore[no-untyped-def]
    d = trained.save(tmp_path / "m")
    damage(d)
    with pytest.raises(pt.PolytaskError, match=message):
        pt.load(d)


def test_weights_damaged_without_changing_their_size_are_caught_by_the_checksum(trained: pt.FittedModel, tmp_path) -> None:  # type: ignore[no-untyped-def]
    d = trained.save(tmp_path / "m")
    data = bytearray(weights_path(d).read_bytes())
    data[-3] ^= 0xFF  # one flipped byte in a weight: safetensors alone would load it
    weights_path(d).write_bytes(bytes(data))
    with pytest.raises(pt.PolytaskError, match="does not match the size and SHA-256 that 'model.json' records"):
        pt.load(d)


def test_missing_feature_column_at_predict_time(trained: pt.FittedModel, mixed_frame: pd.DataFrame) -> None:
    with pytest.raises(pt.PolytaskError, match="feature column 'colour' used in training is missing"):
        trained.predict(mixed_frame.drop(columns=["colour"]))


def test_columns_that_change_type_or_gain_new_values_at_predict_time(trained: pt.FittedModel, mixed_frame: pd.DataFrame) -> None:
    changed = mixed_frame.astype({"x1": object})
    changed.loc[4, "x1"] = "twelve"
    with pytest.raises(pt.PolytaskError, match="feature column 'x1' is numeric in training but holds 'twelve'"):
        trained.predict(changed)
    # an unseen category encodes as all zeros (with a warning counting it) and an extra column is
    # ignored: both still predict
    extra = mixed_frame.assign(colour="purple", unrelated_column=1.0)
    with pytest.warns(pt.data.DataWarning, match="'colour' 300 rows"):
        assert len(trained.predict(extra)) == len(mixed_frame)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the overflow is the point
def test_non_finite_predictions_are_an_error_naming_the_task(two_models, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    frame, old, _ = two_models
    model = pt.load(old.mtl.save(tmp_path / "m"))
    epoch = model.best_epoch["task1"]
    head = next(k for k in model.snapshots[epoch] if k.startswith("heads.task1.") and k.endswith("bias"))
    model.snapshots[epoch][head] = torch.full_like(model.snapshots[epoch][head], float("nan"))
    with pytest.raises(pt.PolytaskError, match=rf"prediction for task 'task1' is not finite .* in {len(frame)} of {len(frame)} rows"):
        model.predict(frame)
    with pytest.raises(pt.PolytaskError, match="task 'task1'"):
        model.predict_outputs(frame)
    with pytest.raises(pt.PolytaskError, match="tensor 'heads.task1.* holds NaN or infinite values"):
        pt.load(model.save(tmp_path / "nan"))  # non-finite weights are a damaged directory
    # finite weights whose decoded predictions overflow (a target mean near the float maximum)
    d = old.mtl.save(tmp_path / "overflow")
    _edit_meta(d, lambda m: m["encoders"]["task1"].update(mean=[1.79e308], std=[1e307]))
    data = tmp_path / "new.csv"
    frame.to_csv(data, index=False)
    code, _, err = run(["predict", d, data, "--out", tmp_path / "p.csv"], capsys)
    assert code == 2 and "task 'task1' is not finite" in err and not (tmp_path / "p.csv").exists()


class Widen(nn.Module):
    def __init__(self, p: int, k: int) -> None:
        super().__init__()
        self.layer = nn.Linear(p, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.layer(x))


class OneRowFails(Widen):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) == 1:  # the builder's width probe (two rows) passes; one row does not
            raise RuntimeError("cannot take a single row")
        return super().forward(x)


def test_a_user_module_of_the_wrong_shape_at_load_is_one_clear_line(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    spec = NetworkSpec(trunk_module=lambda p: Widen(p, 5))
    d = pt.fit(small_frame, ["task0"], spec, pt.TrainConfig(epochs=2)).mtl.save(tmp_path / "m")
    cases = {
        "wider": (lambda p: Widen(p, 7), r"hold tensor 'trunk.layer.weight' as torch.float32 \[5, 6\], the network has torch.float32 \[7, 6\]"),
        "other parameter names": (lambda p: nn.Sequential(nn.Linear(p, 5), nn.Tanh()), r"weights of epoch \d+ lack tensor 'trunk.0.(weight|bias)' and hold 'trunk.layer.(weight|bias)'"),
        "no parameters": (lambda p: nn.Identity(), r"weights of epoch \d+ hold tensor 'trunk.layer.(weight|bias)', which the network does not have"),
        "failing forward": (lambda p: OneRowFails(p, 5), r"the network cannot run with the saved weights \(cannot take a single row\)"),
    }
    for label, (module, message) in cases.items():
        with pytest.raises(pt.PolytaskError, match=message) as err:
            pt.load(d, trunk_module=module)
        assert "\n" not in str(err.value) and "do the user modules given, trunk_module, build what was saved?" in str(err.value), label
    with pytest.raises(pt.PolytaskError, match=r"^the trunk module fails on rows \(n, 6\): mat1 and mat2") as err:
        pt.load(d, trunk_module=lambda p: Widen(p + 2, 5))  # built for another input width


def test_a_full_disk_while_fit_writes_the_model_is_one_line_and_keeps_the_old_model(small_frame: pd.DataFrame,  # type: ignore[no-untyped-def]
                                                                                    tmp_path: Path, capsys, monkeypatch) -> None:
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    out = tmp_path / "m"
    assert run(["fit", data, "-t", "task0", "--out", out, *FAST], capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(path: Path, history: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("polytask.training.tracking.write_history_csv", full)
    code, _, err = run(["fit", data, "-t", "task0", "--seed", "4", "--out", out, *FAST], capsys)
    assert code == 2 and err.count("\n") == 1 and "could not be written (No space left on device)" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
