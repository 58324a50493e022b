"""Where the commands' output goes (issue 17): results on stdout, progress, logs and warnings on
stderr, ``--json`` alone on stdout, ``--quiet`` silent; progress with an ETA, as plain lines
when stderr is not a terminal; the warnings a user wants after ``fit``."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import polytask as pt
from polytask.cli import main
from polytask.report import cut_short, fit_warnings
from polytask.training.callbacks import ProgressCallback
from polytask.training.progress import Ticker, format_seconds

FAST = ["--epochs", "3", "--trunk", "8", "--batch-size", "32"]


def run(args: list[object], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def csv_file(mixed_frame: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    mixed_frame.to_csv(path, index=False)
    return path


@pytest.fixture
def model_dir(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    out = tmp_path / "model"
    assert run(["fit", csv_file, "-t", "task0", "-t", "label", "--out", out, "--quiet", *FAST], capsys)[0] == 0
    return out


def test_fit_writes_results_to_stdout_and_progress_to_stderr(csv_file: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """``polytask fit ... > results.txt`` keeps the results (before: everything on stderr)."""
    code, out, err = run(["fit", csv_file, "-t", "task0", "-t", "label", "--stl", "--out", tmp_path / "m", *FAST], capsys)
    assert code == 0, err
    assert "test metrics" in out and "delta-m of MTL against STL" in out and "saved to" in out
    assert "best epoch" in out  # the early-stopping line per run
    assert "test metrics" not in err and "saved to" not in err
    # progress: plain lines (stderr is not a terminal under pytest), with the run's label
    assert "MTL: epoch 1/3" in err and "STL: epoch 1/3" in err
    assert "MTL: reached the epoch cap after 3 epochs" in err


def test_fit_json_is_the_only_thing_on_stdout(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["fit", csv_file, "-t", "task0", "--out", tmp_path / "m", "--json", *FAST], capsys)
    assert code == 0, err
    report = json.loads(out)  # the whole of stdout parses
    assert report["warnings"] and all(f"warning: {w}" in err for w in report["warnings"])
    assert "test metrics" not in err and "MTL: epoch" not in err  # no table, no progress beside --json
    assert json.loads((tmp_path / "m" / "report.json").read_text())["warnings"] == report["warnings"]


def test_quiet_prints_nothing(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["fit", csv_file, "-t", "task0", "--out", tmp_path / "m", "--quiet", *FAST], capsys)
    assert code == 0 and out == "" and err == ""


def test_predict_and_evaluate_results_on_stdout(model_dir: Path, csv_file: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["predict", model_dir, csv_file, "--out", tmp_path / "p.csv"], capsys)
    assert code == 0 and "wrote 300 predictions" in out and "wrote" not in err
    code, out, err = run(["evaluate", model_dir, csv_file], capsys)
    assert code == 0 and "metrics of" in out and "rmse" in out and "metrics of" not in err
    code, out, err = run(["evaluate", model_dir, csv_file, "--json"], capsys)
    assert code == 0 and set(json.loads(out)) == {"task0", "label"}


@pytest.mark.parametrize("args,expected", [
    (["balancers"], "upgrad"),
    (["architectures", "--tasks", "a=1,b=2"], "mmoe"),
])
def test_listing_commands_print_on_stdout(args: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(args, capsys)
    assert code == 0 and expected in out and err == ""
    code, out, _ = run([*args, "--json"], capsys)
    assert code == 0 and json.loads(out)


def test_relate_and_group_summaries_on_stdout(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    targets = ["-t", "task0", "-t", "task1", "-t", "label"]
    code, out, err = run(["relate", csv_file, *targets, "--method", "cosine", "--out", tmp_path / "r", *FAST], capsys)
    assert code == 0, err
    assert "written to" in out and "MTL: epoch 1/3" in err and "written to" not in err


def test_group_prints_a_recommendation(csv_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --train the recommendation names a set-up (STL included); it is printed on stdout."""
    targets = ["-t", "task0", "-t", "task1", "-t", "label"]
    code, out, err = run(["group", csv_file, *targets, "--max-groups", "2", "--train", "--every", "2",
                          "--out", tmp_path / "g", *FAST], capsys)
    assert code == 0, err
    lines = [line for line in out.splitlines() if line.startswith("recommendation: ")]
    assert len(lines) == 1, out
    assert any(words in lines[0] for words in ("one network", "alone (STL)", "group"))


def test_group_fallback_recommends_stl_when_stl_wins() -> None:
    """The CLI's reading of a GroupReport without its own recommendation: STL when neither
    the groups nor one network beats it."""
    from types import SimpleNamespace

    from polytask.cli.group import recommendation_text

    grouping = SimpleNamespace(groups=[["a", "b"], ["c"]], source="tag")
    comparison = SimpleNamespace(delta_m={"groups": -0.02, "mtl": -0.05})
    text = recommendation_text(SimpleNamespace(grouping=grouping, comparison=comparison))
    assert text.startswith("train each task alone (STL)") and "-2.00%" in text
    comparison.delta_m = {"groups": 0.03, "mtl": 0.01}
    assert recommendation_text(SimpleNamespace(grouping=grouping, comparison=comparison)).startswith("train these groups")
    assert "add --train" in recommendation_text(SimpleNamespace(grouping=grouping, comparison=None))


def test_compare_verdict_on_stdout_progress_on_stderr(csv_file: Path, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["compare", csv_file, "-t", "task0", "-t", "task1", "--seeds", "2", "--baselines", "none",
                          "--out", tmp_path / "c", *FAST], capsys)
    assert code == 0, err
    assert "report:" in out and "report:" not in err
    assert "data.csv: run 0/4" in err and "data.csv: run 4/4" in err  # plain progress lines over the grid


def test_demo_table_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["demo", "--epochs", "2"], capsys)
    assert code == 0 and "RMSE vs STL" in out and "RMSE vs STL" not in err and "MTL: epoch 1/2" in err


def test_lab_experiment_list_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["experiment", "--list"], capsys)
    assert code == 0 and "peaks" in out and err == ""


# -- progress ---------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_ticker_eta_and_interval() -> None:
    clock = Clock()
    ticker = Ticker(100, interval_s=10.0, clock=clock)
    assert ticker.due(1) and ticker.eta(0) is None
    clock.now += 20.0  # 20 s for 10 epochs: 90 left at 2 s each
    assert ticker.eta(10) == pytest.approx(180.0)
    assert ticker.due(10)
    clock.now += 5.0
    assert not ticker.due(11)  # 5 s since the last line
    assert ticker.due(100)  # the last step always
    resumed = Ticker(100, start=50, clock=clock)
    clock.now += 10.0
    assert resumed.eta(60) == pytest.approx(40.0)  # the rate of this process's 10 epochs only
    assert ticker.line("MTL", 10, "epoch", upper_bound=True).startswith("MTL: epoch 10/100, 35s elapsed, ETA at most 5m15s")
    assert format_seconds(42) == "42s" and format_seconds(185) == "3m05s" and format_seconds(3720) == "1h02m"


def test_plain_progress_lines_with_eta(small_frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    con = Console(file=buffer, width=200)
    progress = ProgressCallback("MTL", console=con, interval_s=0.0)
    pt.fit(small_frame, ["task0", "task1"], pt.NetworkSpec(trunk=(4,)), pt.TrainConfig(epochs=4), callbacks=[progress])
    lines = buffer.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines[:3]] == ["MTL: epoch 1/4", "MTL: epoch 2/4", "MTL: epoch 3/4"]
    assert all("ETA at most" in line and "task0 rmse=" in line for line in lines[1:3])
    assert lines[-1].startswith("MTL: reached the epoch cap after 4 epochs")


def test_live_bar_on_a_terminal(small_frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    con = Console(file=buffer, width=200, force_terminal=True)
    progress = ProgressCallback("MTL", console=con, transient=False)
    pt.fit(small_frame, ["task0"], pt.NetworkSpec(trunk=(4,)), pt.TrainConfig(epochs=3), callbacks=[progress])
    text = buffer.getvalue()
    assert "MTL" in text and "3/3" in text and "eta" in text and "MTL: epoch" not in text


# -- warnings ---------------------------------------------------------------------------------------
def test_cut_short_rule() -> None:
    assert cut_short(96, 100, 100, 20, stopped_early=False)  # best epoch 97 of 100
    assert not cut_short(85, 100, 100, 20, stopped_early=False)  # before the last 10 %
    assert not cut_short(96, 100, 100, 20, stopped_early=True)
    assert not cut_short(40, 60, 100, 20, stopped_early=False)  # did not reach the cap
    assert cut_short(9, 10, 10, 3, stopped_early=False) and not cut_short(7, 10, 10, 3, stopped_early=False)


def test_fit_warns_of_late_best_epochs_small_test_splits_and_classes_close_to_rows() -> None:
    rng = np.random.default_rng(0)
    n = 120
    x = rng.normal(size=(n, 3))
    frame = pd.DataFrame(x, columns=["a", "b", "c"])
    frame["y"] = x @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.1, size=n)
    frame["code"] = [f"c{i % 40}" for i in range(n)]  # 40 classes for ~84 training rows
    report = pt.fit(frame, pt.Targets(["y", "code"], kinds={"code": "multiclass"}), pt.NetworkSpec(trunk=(8,)),
                    pt.TrainConfig(epochs=5), setups=[pt.STLBaseline()])
    warnings = fit_warnings(report)
    assert "task 'y': only 18 labelled test rows" in warnings[0]
    assert any(w.startswith("task 'code': 40 classes for 84 labelled training rows") for w in warnings)
    late = [w for w in warnings if w.startswith("task 'y': best epoch")]
    assert late == ["task 'y': best epoch 5 of 5 (MTL), 5 of 5 (STL): training may have been cut short; try --epochs 15"]


def test_no_warning_on_a_healthy_run(small_frame: pd.DataFrame) -> None:
    frame = pd.concat([small_frame] * 2, ignore_index=True)  # 400 rows: 60 test rows
    report = pt.fit(frame, ["task0"], pt.NetworkSpec(trunk=(4,)), pt.TrainConfig(epochs=200, patience=3, lr=0.05))
    assert report.mtl.summary["stopped_early"] and fit_warnings(report) == []
