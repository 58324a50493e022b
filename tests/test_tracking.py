"""Experiment tracking: TensorBoard event files that tensorboard's own reader parses, an MLflow
run with the settings and per-epoch metrics, a CSV log, and the ``--log`` option."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

import polytask as pt
from polytask.cli import main
from polytask.training.tracking import CSVLogger, MLflowLogger, TensorBoardLogger, epoch_scalars, logger_from_spec


def _fit(frame: pd.DataFrame, *callbacks: pt.Callback, epochs: int = 3) -> pt.FitReport:
    return pt.fit(frame, ["task0", "task1"], pt.NetworkSpec(trunk=(6,)), pt.TrainConfig(epochs=epochs, balancer="dwa"),
                  callbacks=list(callbacks))


def test_epoch_scalars_flatten_losses_metrics_and_weights() -> None:
    logs = {"epoch": 2, "train_loss": {"a": 1.0}, "val_loss": {"a": 0.5, "b": float("nan")}, "weights": {"a": 1.0},
            "val_metrics": {"a": {"r2": 0.3}}}
    assert epoch_scalars(logs) == {"train_loss/a": 1.0, "val_loss/a": 0.5, "weight/a": 1.0, "val/a/r2": 0.3}


def test_tensorboard_event_files_parse_with_tensorboards_reader(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    report = _fit(small_frame, TensorBoardLogger(tmp_path / "tb"))
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train_loss/task0", "val_loss/task1", "weight/task0", "val/task0/rmse"} <= tags
    history = report.mtl.summary["history"]
    logged = events.Scalars("train_loss/task0")
    assert [e.step for e in logged] == [h["epoch"] for h in history]
    assert [e.value for e in logged] == pytest.approx([h["train_loss"]["task0"] for h in history], rel=1e-6)
    assert "settings/text_summary" in events.Tags()["tensors"]


def test_mlflow_run_holds_the_settings_and_the_metrics(small_frame: pd.DataFrame, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # a local file store, no server
    logger = MLflowLogger("polytask-test", run_name="mtl", tracking_uri=f"file:{tmp_path / 'mlruns'}")
    report = _fit(small_frame, logger)
    client = mlflow.tracking.MlflowClient(tracking_uri=f"file:{tmp_path / 'mlruns'}")
    run = client.get_run(logger.run_id)
    assert run.data.params["train.balancer"] == "dwa" and run.data.params["network.arch"] == "hps"
    history = client.get_metric_history(logger.run_id, "val_loss/task1")
    expected = [h["val_loss"]["task1"] for h in report.mtl.summary["history"]]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(expected)
    assert run.info.run_name == "mtl" and run.info.status == "FINISHED"


def test_csv_log_and_the_log_option(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    small_frame.to_csv(data, index=False)
    out = tmp_path / "m"
    code = main(["fit", str(data), "-t", "task0", "-t", "task1", "--epochs", "2", "--stl", "--trunk", "4",
                 "--log", f"csv:{tmp_path / 'log.csv'}", "--log", f"tensorboard:{tmp_path / 'tb'}", "-o", str(out), "-q"])
    assert code == 0
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert [r["epoch"] for r in rows] == ["0", "1"] and "val/task0/r2" in rows[0]
    assert (tmp_path / "log-stl.csv").exists() and any((tmp_path / "tb" / "stl").iterdir())
    saved = list(csv.DictReader((out / "history.csv").open()))  # always written into the model directory
    meta = json.loads((out / "model.json").read_text())
    assert [float(r["train_loss/task0"]) for r in saved] == pytest.approx(
        [h["train_loss"]["task0"] for h in meta["summary"]["history"]])
    assert (out / "stl" / "history.csv").exists()
    for bad in ("wandb:x", "csv", "tensorboard:"):
        assert main(["fit", str(data), "-t", "task0", "--log", bad, "-o", str(tmp_path / "x"), "-q"]) == 2


def test_csv_logger_file_equals_the_history(small_frame: pd.DataFrame, tmp_path: Path) -> None:
    report = _fit(small_frame, CSVLogger(tmp_path / "h.csv"))
    rows = list(csv.DictReader((tmp_path / "h.csv").open()))
    assert len(rows) == report.mtl.summary["epochs_run"]
    assert isinstance(logger_from_spec("jsonl:x.jsonl"), pt.Callback)
