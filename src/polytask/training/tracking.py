"""Experiment tracking: callbacks that log every epoch's per-task losses, validation metrics and
balancer weights, and the run's settings, to a CSV file, TensorBoard or MLflow.

Each epoch becomes one set of scalars named ``train_loss/<task>``, ``val_loss/<task>``,
``weight/<task>`` and ``val/<task>/<metric>`` (:func:`epoch_scalars`). TensorBoard
(``torch.utils.tensorboard``, the ``tensorboard`` package) and MLflow (the ``mlflow`` or
``mlflow-skinny`` package) are optional: ``pip install "polytask[tracking]"``. On the command
line, ``polytask fit --log tensorboard:DIR``, ``--log mlflow[:EXPERIMENT]`` (the tracking
server or store comes from ``MLFLOW_TRACKING_URI``), ``--log csv:FILE`` or ``--log jsonl:FILE``;
``polytask fit`` also writes ``history.csv`` into the model directory by default.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytask.errors import PolytaskError
from polytask.serialization import atomic_write_text
from polytask.training.callbacks import Callback, JsonLinesLogger

if TYPE_CHECKING:
    from polytask.training.trainer import Trainer

LOG_KINDS = ("csv", "jsonl", "tensorboard", "mlflow")


def epoch_scalars(logs: dict[str, Any]) -> dict[str, float]:
    """The scalars of one epoch's ``logs`` (non-finite values left out)."""
    out: dict[str, float] = {}
    for key in ("train_loss", "val_loss", "weights"):
        prefix = "weight" if key == "weights" else key
        for task, value in (logs.get(key) or {}).items():
            out[f"{prefix}/{task}"] = float(value)
    for task, metrics in (logs.get("val_metrics") or {}).items():
        for name, value in metrics.items():
            out[f"val/{task}/{name}"] = float(value)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def run_settings(trainer: "Trainer") -> dict[str, Any]:
    """The settings of the run being trained, flat (``train.lr``, ``network.trunk``...)."""
    flat: dict[str, Any] = {"network.arch": trainer.network.arch, "tasks": ",".join(trainer.task_names)}
    for key, value in trainer.config.to_dict().items():
        flat[f"train.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    for key, value in trainer.network.config().items():
        if key not in ("output_dims",):
            flat[f"network.{key}"] = json.dumps(value) if isinstance(value, (dict, list)) else value
    return flat


class CSVLogger(Callback):
    """One row per epoch (``epoch`` and :func:`epoch_scalars`) in ``path``, rewritten whole at
    every epoch (atomically), so a resumed run's file holds every epoch."""

    main_process_only = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_fit_start(self, trainer: "Trainer") -> None:
        write_history_csv(self.path, trainer.history)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        write_history_csv(self.path, trainer.history)


def write_history_csv(path: str | Path, history: list[dict[str, Any]]) -> None:
    """Epoch logs as a CSV table: ``epoch`` then every scalar that appears, in first-seen order."""
    rows = [{"epoch": h.get("epoch", i), **epoch_scalars(h)} for i, h in enumerate(history)]
    columns = list(dict.fromkeys(k for row in rows for k in row)) or ["epoch"]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


class TensorBoardLogger(Callback):
    """Scalars per epoch (``global_step`` = epoch) and the settings as text, in TensorBoard
    event files under ``log_dir``."""

    main_process_only = True

    def __init__(self, log_dir: str | Path) -> None:
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise PolytaskError('logging to TensorBoard needs the tensorboard package: pip install "polytask[tracking]"') from None
        self._writer = SummaryWriter(log_dir=str(self.log_dir))
        settings = "\n".join(f"    {k}: {v}" for k, v in run_settings(trainer).items())
        self._writer.add_text("settings", settings, global_step=trainer.epoch)

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        for name, value in epoch_scalars(logs).items():
            self._writer.add_scalar(name, value, global_step=epoch)
        self._writer.flush()

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _mlflow_key(name: str) -> str:
    """MLflow accepts letters, digits, ``_ - . / `` and spaces in names; anything else becomes ``_``."""
    return re.sub(r"[^\w\-./ ]", "_", name)


class MLflowLogger(Callback):
    """A run in MLflow experiment ``experiment`` (the tracking URI from ``tracking_uri`` or
    MLflow's own ``MLFLOW_TRACKING_URI``): the settings as parameters, the scalars per epoch."""

    main_process_only = True

    def __init__(self, experiment: str = "polytask", run_name: str | None = None, tracking_uri: str | None = None) -> None:
        self.experiment = experiment
        self.run_name = run_name
        self.tracking_uri = tracking_uri
        self._mlflow: Any = None
        self.run_id: str | None = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        try:
            import mlflow
        except ImportError:
            raise PolytaskError('logging to MLflow needs the mlflow package: pip install "polytask[tracking]"') from None
        self._mlflow = mlflow
        if self.tracking_uri is not None:
            mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment)
        run = mlflow.start_run(run_name=self.run_name, run_id=self.run_id)
        self.run_id = run.info.run_id
        if trainer.epoch == 0:
            mlflow.log_params({_mlflow_key(k): v for k, v in run_settings(trainer).items()})

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        self._mlflow.log_metrics({_mlflow_key(k): v for k, v in epoch_scalars(logs).items()}, step=epoch)

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self._mlflow is not None:
            self._mlflow.end_run()

    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id} if self.run_id else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id")  # a resumed run goes on logging into the same MLflow run


def logger_from_spec(spec: str, run: str = "mtl") -> Callback:
    """The logger a ``--log`` value names, for run ``run`` (``mtl`` or ``stl``): ``csv:FILE``,
    ``jsonl:FILE``, ``tensorboard:DIR`` or ``mlflow[:EXPERIMENT]``. The STL run writes beside the
    MTL one: ``FILE`` becomes ``FILE-stl``, ``DIR`` gets ``DIR/stl``, MLflow gets a run named stl."""
    kind, _, target = spec.partition(":")
    kind = kind.strip().lower()
    if kind not in LOG_KINDS:
        raise PolytaskError(f"--log expects one of {', '.join(LOG_KINDS)} (as KIND:PATH), got '{spec}'")
    if kind == "mlflow":
        return MLflowLogger(target or "polytask", run_name=run)
    if not target:
        raise PolytaskError(f"--log {kind} needs a path: --log {kind}:PATH")
    path = Path(target)
    if kind == "tensorboard":
        return TensorBoardLogger(path / run)
    if run != "mtl":
        path = path.with_name(f"{path.stem}-{run}{path.suffix}")
    return CSVLogger(path) if kind == "csv" else JsonLinesLogger(path)
