"""The command line end to end, and every bad input of the core issue."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polytask.cli import main
from polytask.io import weights_path
from polytask.training.checkpoint import checkpoint_epoch

FAST = ["--epochs", "4", "--trunk", "16", "--quiet"]
#: A previous model directory's model.json (the format marker is what makes it one).
PREVIOUS = json.dumps({"format": "polytask-model", "format_version": 2, "note": "previous good model"})


@pytest.fixture
def csv_file(mixed_frame: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    mixed_frame.to_csv(path, index=False)
    return path


def run(args: list[str], capsys) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_fit_predict_evaluate_end_to_end(mixed_frame: pd.DataFrame, tmp_path: Path, fmt: str, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / f"data.{fmt}"
    getattr(mixed_frame, f"to_{fmt}")(data, index=False)
    model = tmp_path / "model"
    code, out, err = run(["fit", data, "-t", "task0", "-t", "label", "-t", "grade", "--aux", "task1",
                          "--kind", "grade=multiclass", "--stl", "--out", model, "--json", *FAST], capsys)
    assert code == 0, err
    report = json.loads(out)
    assert set(report["mtl"]["test"]) == {"task0", "label", "grade", "task1"}
    assert (model / "stl" / "model.json").exists() and (model / "report.json").exists()
    new_rows = tmp_path / f"new.{fmt}"
    getattr(mixed_frame.drop(columns=["task0", "task1", "label", "grade"]), f"to_{fmt}")(new_rows, index=False)
    preds = tmp_path / "preds.csv"
    code, out, err = run(["predict", model, new_rows, "--out", preds, "--quiet"], capsys)
    assert code == 0, err
    table = pd.read_csv(preds)
    assert len(table) == len(mixed_frame) and "task1" not in table.columns
    assert {"task0", "label", "label:proba_yes", "grade", "grade:proba_mid"} <= set(table.columns)
    code, out, err = run(["evaluate", model, data, "--json"], capsys)
    assert code == 0, err
    assert set(json.loads(out)) == {"task0", "label", "grade"}


def test_multi_input_task_column(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({"school": rng.choice(["a", "b", "c"], n), "x": rng.normal(size=n)})
    frame["score"] = frame["x"] * 2 + frame["school"].map({"a": 0, "b": 1, "c": -1}) + rng.normal(scale=0.1, size=n)
    data = tmp_path / "schools.csv"
    frame.to_csv(data, index=False)
    code, out, err = run(["fit", data, "-t", "score", "--task-column", "school", "--out", tmp_path / "m", "--json", *FAST], capsys)
    assert code == 0, err
    assert set(json.loads(out)["mtl"]["test"]) == {"score@a", "score@b", "score@c"}


def test_help_on_every_command(capsys) -> None:  # type: ignore[no-untyped-def]
    from polytask.cli import app

    for name in app.commands:
        code, out, _ = run([name, "--help"], capsys)
        assert code == 0 and "Usage:" in out


BAD_CASES = [
    ("missing target column", ["-t", "nope"], "target column 'nope' is not in the data"),
    ("unknown aux column", ["-t", "task0", "--aux", "ghost"], "target column 'ghost' is not in the data"),
    ("non-numeric regression target", ["-t", "label", "--kind", "label=regression"], "regression target column 'label' holds non-numeric value"),
    ("single class", ["-t", "task0", "-t", "const"], "classification task 'const' has a single class 'k'"),
    ("all-missing task", ["-t", "task0", "-t", "empty"], "task 'empty' has no labels"),
    ("nan feature under error policy", ["-t", "task0", "--missing", "error", "--features", "x0,x1,holey"], "feature column 'holey' has a missing value"),
    ("unknown balancer", ["-t", "task0", "--balancer", "magic"], "unknown balancer 'magic' (choose from"),
    ("unknown architecture", ["-t", "task0", "--arch", "magic"], "unknown architecture 'magic'"),
]


@pytest.mark.parametrize("label,args,message", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_fit_inputs(mixed_frame: pd.DataFrame, tmp_path: Path, label: str, args: list[str], message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    frame = mixed_frame.assign(const="k", empty=np.nan)
    frame["holey"] = frame["x0"].where(frame.index % 7 != 3)
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    out_dir = tmp_path / "model"
    out_dir.mkdir()
    (out_dir / "model.json").write_text(PREVIOUS)
    code, _, err = run(["fit", data, *args, "--out", out_dir, *FAST], capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert (out_dir / "model.json").read_text() == PREVIOUS


def test_infinite_feature_is_rejected(mixed_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    frame = mixed_frame.copy()
    frame.loc[5, "x1"] = np.inf
    data = tmp_path / "d.csv"
    frame.to_csv(data, index=False)
    code, _, err = run(["fit", data, "-t", "task0", "--out", tmp_path / "m", *FAST], capsys)
    assert code == 2 and "feature column 'x1' has an infinite value" in err


@pytest.mark.parametrize(
    "content,message",
    [("", "is empty"), ("a,b\n1,2,3,4\n5\n\"unclosed", "could not be read as csv"), ("a,b\n", "has no data rows")],
)
def test_empty_or_malformed_files(tmp_path: Path, content: str, message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "bad.csv"
    data.write_text(content)
    code, _, err = run(["fit", data, "-t", "a", "--out", tmp_path / "m", *FAST], capsys)
    assert code == 2 and message in err and f"'{data}'" in err


def test_missing_file_and_corrupt_parquet(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["fit", tmp_path / "absent.csv", "-t", "a", "--out", tmp_path / "m"], capsys)
    assert code == 2 and "does not exist" in err
    pq = tmp_path / "bad.parquet"
    pq.write_bytes(b"PAR1 not really")
    code, _, err = run(["fit", pq, "-t", "a", "--out", tmp_path / "m"], capsys)
    assert code == 2 and "could not be read as parquet" in err


def test_predict_time_errors_leave_existing_output_alone(mixed_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    mixed_frame.to_csv(data, index=False)
    model = tmp_path / "model"
    assert run(["fit", data, "-t", "task0", "--out", model, *FAST], capsys)[0] == 0
    preds = tmp_path / "preds.csv"
    preds.write_text("old predictions")
    other = tmp_path / "other.csv"
    mixed_frame.drop(columns=["x2"]).to_csv(other, index=False)
    code, _, err = run(["predict", model, other, "--out", preds], capsys)
    assert code == 2 and "feature column 'x2' used in training is missing" in err
    weights_path(model).write_bytes(b"broken")
    code, _, err = run(["predict", model, data, "--out", preds], capsys)
    assert code == 2 and "is corrupted" in err
    code, _, err = run(["evaluate", tmp_path / "nowhere", data], capsys)
    assert code == 2 and "does not exist" in err
    assert preds.read_text() == "old predictions"


def test_user_errors_print_no_traceback_in_a_real_process(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from polytask.cli import run; run()", "fit", str(tmp_path / "x.csv"), "-t", "y", "--out", str(tmp_path / "m")],
        capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.strip().startswith("error: file")


def test_usage_errors_exit_2(capsys) -> None:  # type: ignore[no-untyped-def]
    code, _, err = run(["fit"], capsys)
    assert code == 2 and "Missing argument" in err


def test_a_negative_seed_is_one_line_before_any_work(small_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Issue 18: ``--seed -1`` ended in numpy's traceback after the data was read."""
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    for option, value, name in (("--seed", "-1", "seed"), ("--seed", str(2**32), "seed"), ("--split-seed", "-3", "split seed")):
        code, _, err = run(["fit", data, "-t", "task0", option, value, "--out", tmp_path / "m"], capsys)
        assert code == 2 and err.count("\n") == 1 and f"{name} must be a whole number from 0 to 2**32 - 1, got {value}" in err
    assert not (tmp_path / "m").exists()


def test_divergence_stops_naming_task_and_epoch_and_keeps_last_good_checkpoint(small_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    out_dir, ckpt = tmp_path / "model", tmp_path / "ckpt"
    out_dir.mkdir()
    (out_dir / "model.json").write_text(PREVIOUS)
    # plain SGD at lr 1 diverges during epoch 1: the loss grows by orders of magnitude (before
    # overflowing), which stops training with a message naming the task and asking for a lower lr
    code, _, err = run(["fit", data, "-t", "task0", "-t", "task1", "--optimizer", "sgd", "--lr", "1", "--epochs", "30",
                        "--checkpoint-dir", ckpt, "--out", out_dir, "--quiet"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "training diverged" in err and "task 'task0'" in err and "at epoch 1" in err and "lower learning rate" in err
    assert checkpoint_epoch(ckpt / "mtl") == 0
    assert (out_dir / "model.json").read_text() == PREVIOUS


def test_checkpoints_and_resume_from_the_command_line(small_frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    ckpt = tmp_path / "ckpt"
    base = ["fit", data, "-t", "task0", "--stl", "--early-stopping", "none", "--trunk", "8", "--quiet", "--json"]
    assert run([*base, "--epochs", "2", "--checkpoint-dir", ckpt, "--out", tmp_path / "a"], capsys)[0] == 0
    assert checkpoint_epoch(ckpt / "stl") == 1
    log = tmp_path / "log.jsonl"
    assert run([*base, "--epochs", "3", "--log-file", log, "--out", tmp_path / "logged"], capsys)[0] == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [e["epoch"] for e in lines] == [0, 1, 2] and set(lines[0]["val_metrics"]) == {"task0"}
    code, out, err = run([*base, "--epochs", "4", "--checkpoint-dir", ckpt, "--resume", "--out", tmp_path / "b"], capsys)
    assert code == 0, err
    resumed = json.loads(out)
    full_code, full_out, _ = run([*base, "--epochs", "4", "--out", tmp_path / "c"], capsys)
    assert resumed["mtl"]["epochs_run"] == 4 and resumed["mtl"]["test"] == json.loads(full_out)["mtl"]["test"]
    code, _, err = run([*base, "--resume", "--out", tmp_path / "d"], capsys)
    assert code == 2 and "--resume needs --checkpoint-dir" in err


def test_python_dash_m_runs_the_same_command_line() -> None:
    done = subprocess.run([sys.executable, "-m", "polytask", "experiment", "--list", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "peaks" in json.loads(done.stdout)["experiments"]
