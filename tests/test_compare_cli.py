"""`polytask compare` end to end: JSON, Markdown, PNG and a self-contained HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polytask.cli import main
from polytask.synthetic import related_tasks

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def csv_with_gaps(tmp_path: Path) -> Path:
    frame, _ = related_tasks(n_rows=240, n_features=5, n_tasks=3, binary_tasks=1, seed=5)
    frame.loc[np.arange(0, 240, 7), "task1"] = np.nan  # missing labels stay masked
    path = tmp_path / "data.csv"
    frame.to_csv(path, index=False)
    return path


def test_compare_writes_every_output(csv_with_gaps: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "report"
    code = main(["compare", str(csv_with_gaps), "-t", "task0", "-t", "task1", "-t", "task2", "--seeds", "2",
                 "--epochs", "3", "--trunk", "8", "--balancer", "ew,static", "--baselines", "linear,mlp",
                 "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    printed = json.loads(captured.out)
    assert set(printed["files"]) >= {"json", "markdown", "html", "per_task", "delta_m"}
    summary = json.loads((out / "comparison.json").read_text())
    assert list(summary["candidates"]) == ["stl", "mtl:hps+ew", "mtl:hps+static", "linear", "mlp"]
    assert summary["problem"]["runs"] == 2 and len(summary["runs"]) == 2
    # the same split for every candidate of a run
    assert summary["problem"]["headline_metrics"] == {"task0": "rmse", "task1": "rmse", "task2": "roc_auc"}
    mtl = summary["candidates"]["mtl:hps+ew"]
    assert len(mtl["delta_m"]["values"]) == 2 and set(mtl["paired_tests"]) == {"task0", "task1", "task2"}
    assert mtl["parameters"] > 0 and mtl["seconds"]["mean"] > 0
    # mixed kinds and a missing label: the mlp baseline runs (one MLP per task) instead of being skipped
    assert summary["candidates"]["mlp"]["note"] == "" and "delta_m" in summary["candidates"]["mlp"]
    assert set(summary["candidates"]["mlp"]["tasks"]) == {"task0", "task1", "task2"}
    assert summary["verdict"][0].split(":")[0] in {"MTL WINS", "MTL LOSES", "NO SIGNIFICANT DIFFERENCE"}
    md = (out / "report.md").read_text()
    assert "| task0 (rmse, lower is better) |" in md and "delta-m vs STL" in md and "![per task](per_task.png)" in md
    for name in ("per_task.png", "delta_m.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 2 and "<table>" in html
    assert 'src="http' not in html and "<script" not in html  # self-contained


def test_compare_with_folds(csv_with_gaps: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "folds"
    code = main(["compare", str(csv_with_gaps), "-t", "task0", "-t", "task1", "--folds", "3", "--epochs", "2",
                 "--trunk", "8", "--baselines", "none", "--out", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["problem"]["scheme"] == "folds" and summary["problem"]["runs"] == 3
    tests = [r["rows"]["test"] for r in summary["runs"]]
    assert sum(tests) == 240  # every row is a test row exactly once


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seeds", "2", "--folds", "3"], "--seeds or --folds, not both"),
        (["--seeds", "1"], "at least 2 seeds"),
        (["--baselines", "xgboost"], "unknown baseline 'xgboost'"),
        (["--arch", "hps,nope"], "unknown architecture 'nope'"),
        (["--balancer", "ew,nope"], "nope"),
    ],
)
def test_bad_compare_inputs(csv_with_gaps: Path, tmp_path: Path, args: list[str], message: str, capsys) -> None:  # type: ignore[no-untyped-def]
    code = main(["compare", str(csv_with_gaps), "-t", "task0", "-t", "task1", "--out", str(tmp_path / "x"),
                 "--quiet", *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err and "Traceback" not in err
