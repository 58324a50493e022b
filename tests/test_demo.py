"""`polytask demo`: MTL against STL, gradient boosting and the shuffle control on a main task
with few labels and related auxiliary tasks."""

from __future__ import annotations

import json

from polytask.cli import main
from polytask.cli.demo import demo_problem, verdict


def test_demo_shows_mtl_beating_stl_and_the_shuffle_control_removing_the_gain(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    arms = {k: v["rmse"] for k, v in out["test_metrics"].items()}
    assert set(arms) == {"MTL", "MTL, auxiliary labels shuffled", "STL", "gradient boosting"}
    # the demo's point: with few main labels, related tasks on more rows help clearly ...
    assert arms["MTL"] < 0.85 * arms["STL"]
    # ... because of what they say about each row: the same signal, shuffled, does not help
    assert arms["MTL, auxiliary labels shuffled"] > arms["MTL"] + 0.5 * (arms["STL"] - arms["MTL"])
    assert arms["MTL"] < arms["gradient boosting"]
    assert out["rows"] == {"train": 1000, "main labels": 100, "val": 200, "test": 2000}
    assert out["verdict"].startswith("Learning the related tasks together cut") and "\n" not in out["verdict"]


def test_demo_data_masks_the_main_task_beyond_its_labelled_rows() -> None:
    frame, main, aux, split, labelled = demo_problem(0)
    assert frame[main].iloc[split.train].notna().sum() == 100 and len(labelled.train) == 100
    assert frame[aux].iloc[split.train].notna().all().all() and len(split.test) == 2000


def test_verdict_says_so_when_mtl_does_not_help() -> None:
    arms = {k: {"rmse": v} for k, v in {"MTL": 0.9, "MTL, auxiliary labels shuffled": 0.9, "STL": 0.8,
                                        "gradient boosting": 0.7}.items()}
    assert verdict(arms).startswith("Here MTL did not help")


def test_demo_prints_the_table_and_one_line(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--epochs", "3"]) == 0
    out = capsys.readouterr().out
    assert "RMSE vs STL" in out and "gradient boosting" in out and "shuffled" in out
