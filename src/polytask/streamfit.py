"""Training on a table larger than memory: :func:`fit_stream` is :func:`polytask.workflow.fit`
for files read as a stream (``polytask fit DATA --stream``).

The table is prepared in one pass (:func:`polytask.data.streaming.prepare_stream`), the network
trains on a ``DataLoader`` over the shuffled training batches with early stopping on the
streamed validation rows (:mod:`polytask.training.loader`), and the validation and test metrics
are computed streaming the rows again (on the first ``StreamConfig.metric_rows`` rows of each
split, so that memory stays bounded: every row of a smaller split). The result is a :class:`~polytask.fitted.FittedModel`
like any other (same model directory, loaded by ``polytask predict`` unchanged); its summary
records the split (``summary["split"]``: method, seed, fractions, rows per split, files).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polytask.data.config import DataConfig
from polytask.data.stream_config import StreamConfig
from polytask.data.streaming import StreamPrepared, prepare_stream
from polytask.evaluate import metrics_by_task
from polytask.fitted import FittedModel
from polytask.models.spec import NetworkSpec
from polytask.setups import RunPlan
from polytask.tasks import TaskSource
from polytask.training.callbacks import Callback
from polytask.training.config import TrainConfig
from polytask.training.loader import stream_losses
from polytask.training.trainer import Trainer
from polytask.workflow import _summary


@dataclass
class StreamFit:
    """A model trained on a streamed table, with the prepared stream it came from."""

    prepared: StreamPrepared
    model: FittedModel

    def metrics(self, split: str = "test") -> dict[str, dict[str, float]]:
        return dict(self.model.summary[f"{split}_metrics"])


def streamed_metrics(trainer: Trainer, prepared: StreamPrepared, split: str, batch_size: int) -> dict[str, dict[str, float]]:
    """Per-task metrics of the trainer's network on the first ``metric_rows`` rows of ``split``
    (all of a smaller split), streamed: only their outputs and labels are held."""
    if prepared.rows[split] == 0:
        return {}
    loader = prepared.loader(split, batch_size, shuffle=False)
    _, labels, outputs = stream_losses(trainer, loader, keep=prepared.config.metric_rows)
    if labels is None or outputs is None:
        return {}
    raw = trainer.loss_plan().layout.split(outputs)
    targets, masks = labels.targets, labels.masks
    def host(values: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {name: v.cpu().numpy() for name, v in values.items()}

    return metrics_by_task(prepared.encoders, host(raw), host(targets), host(masks))


def fit_stream(data: str | Path | StreamPrepared, tasks: TaskSource | None = None, spec: NetworkSpec | None = None,
               config: TrainConfig | None = None, *, data_config: DataConfig | None = None,
               stream: StreamConfig | None = None, callbacks: list[Callback] | tuple[Callback, ...] = (),
               resume_from: str | Path | None = None) -> StreamFit:
    """Train MTL on the files at ``data`` without loading them whole (see the module docstring);
    ``resume_from``: a checkpoint directory (a :class:`~polytask.training.callbacks.CheckpointCallback`'s)
    of the same run on the same files, to continue from."""
    config, spec = config or TrainConfig(), spec or NetworkSpec()
    prepared = data if isinstance(data, StreamPrepared) else prepare_stream(
        data, tasks if tasks is not None else (), data_config, stream, seed=config.seed)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        network = spec.build(prepared.n_features, prepared.output_dims)
        trainer = Trainer(network, prepared.tasks, prepared.encoders, config, callbacks=list(callbacks))
        train = prepared.loader("train", config.batch_size, seed=config.seed)
        val = prepared.loader("val", 4096, shuffle=False) if prepared.rows["val"] else None
        result = trainer.fit(train, val, resume_from=resume_from)
    seconds = time.perf_counter() - started
    if result.snapshots:
        network.load_state_dict(result.snapshots[max(result.snapshots)])
    plan = RunPlan("mtl", None, spec, config, None, list(callbacks))  # type: ignore[arg-type]
    summary: dict[str, Any] = _summary(plan, trainer, result, seconds)
    summary["split"] = prepared.split_record()
    summary["val_metrics"] = streamed_metrics(trainer, prepared, "val", 4096)
    summary["test_metrics"] = streamed_metrics(trainer, prepared, "test", 4096)
    network.eval().cpu()
    model = FittedModel(network=network, tasks=prepared.tasks, encoders=prepared.encoders,
                        preprocessor=prepared.preprocessor,
                        snapshots={e: {k: v.cpu() for k, v in s.items()} for e, s in result.snapshots.items()},
                        best_epoch=result.best_epoch, train_config=config.to_dict(), summary=summary)
    return StreamFit(prepared, model)


def stream_report(fit: StreamFit) -> dict[str, Any]:
    """The ``report.json`` of a streamed fit: the shape :meth:`FitReport.to_dict` gives, plus the split."""
    s, rows = fit.model.summary, fit.prepared.rows
    return {
        "tasks": [t.to_dict() for t in fit.prepared.tasks],
        "rows": dict(rows),
        "split": s["split"],
        "mtl": {"val": s["val_metrics"], "test": s["test_metrics"], "best_epoch": s["best_epoch"],
                "epochs_run": s["epochs_run"], "parameters": s["parameters"], "train_seconds": s["train_seconds"],
                "balancer": s["balancer"],
                "mean_applied_weights": {t: float(np.mean(w)) if w else float("nan")
                                         for t, w in s["applied_weights"].items()},
                "controls": s.get("controls", {})},
        "columns": fit.prepared.columns.to_dict(),
    }


__all__ = ["StreamFit", "fit_stream", "stream_report", "streamed_metrics"]
