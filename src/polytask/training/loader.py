"""Training from any iterable of batches (a torch ``DataLoader`` of images, text, a stream of
record batches): what :meth:`Trainer.fit` does when it is given loaders instead of tensors.

The batch format. Each batch is one of

- a :class:`~polytask.data.tensors.TaskTensors` (what :class:`polytask.data.streaming.StreamDataset` yields);
- a mapping ``{"x": features, "targets": {task: (n, d_t)}, "masks": {task: (n, d_t) bool}}``
  (``masks`` may be left out: every label observed);
- a tuple ``(x, targets)`` or ``(x, targets, masks)`` of the same.

``x`` is what the network's ``encode`` takes (a float ``(n, p)`` table, ``(n, C, H, W)``
images...). A task's target is a float ``(n, d_t)`` (or ``(n,)``) tensor in encoded units: the
class index for binary and multiclass tasks, standardized values for regression (as the
task's :class:`~polytask.data.targets.TargetEncoder` makes them); a masked entry is left out of
the loss. A plain ``DataLoader`` with its default collate function turns a dataset of
``(x, {task: y})`` pairs into exactly this.

Each epoch trains on the loader's batches in its order (``set_epoch(epoch)`` is called on a
dataset or sampler that has it, as PyTorch's samplers expect), then streams the validation
loader: the loss of task ``t`` is ``sum_b L_t,b c_t,b / sum_b c_t,b`` with ``c_t,b`` its labelled
entries in batch ``b`` (the mean over every labelled entry, equal to the loss on the whole
validation set at once); metrics, when ``val_metrics`` asks for them, are computed on the
concatenated outputs and targets (only outputs and labels are held, never the features). Early
stopping, callbacks and the history are the trainer's own. A checkpoint of a loader run can be
resumed when the loader's dataset says what data it reads and where its shuffle stands
(:func:`resumable_source`; polytask's :class:`~polytask.data.streaming.StreamDataset` does);
any other loader's run cannot, and a resume is refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from polytask.data.tensors import TaskTensors
from polytask.errors import NonFiniteLossError, PolytaskError
from polytask.training.step_means import StepMeans
from polytask.training.packed import PackedTensors

if TYPE_CHECKING:
    from polytask.training.trainer import Trainer, TrainResult


def as_task_batch(batch: Any, task_names: list[str]) -> TaskTensors:
    """A batch in any of the module docstring's forms as :class:`TaskTensors`."""
    if isinstance(batch, (TaskTensors, PackedTensors)):
        return batch  # type: ignore[return-value]
    if isinstance(batch, Mapping):
        x, targets, masks = batch.get("x"), batch.get("targets"), batch.get("masks")
    elif isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        x, targets, masks = batch[0], batch[1], batch[2] if len(batch) == 3 else None
    else:
        raise PolytaskError(f"a batch is a TaskTensors, a mapping with 'x', 'targets' and 'masks', or a tuple "
                            f"(x, targets[, masks]); got {type(batch).__name__}")
    if not isinstance(x, torch.Tensor) or not isinstance(targets, Mapping):
        raise PolytaskError("a batch needs a tensor 'x' and a mapping 'targets' of task name to tensor")
    absent = [t for t in task_names if t not in targets]
    if absent:
        raise PolytaskError(f"a batch has no target for task '{absent[0]}'")
    ys = {t: _column(targets[t]).float() for t in task_names}
    ms = {t: (_column(masks[t]).bool() if masks is not None and t in masks else torch.ones_like(ys[t], dtype=torch.bool))
          for t in task_names}
    return TaskTensors(x, ys, ms)


def _column(v: Any) -> torch.Tensor:
    v = torch.as_tensor(v)
    return v.unsqueeze(1) if v.ndim == 1 else v


def _packed(trainer: "Trainer", batch: Any) -> PackedTensors:
    if isinstance(batch, PackedTensors):
        return batch
    return trainer.pack(as_task_batch(batch, trainer.task_names))


def _set_epoch(loader: Iterable[Any], epoch: int) -> None:
    for part in (loader, getattr(loader, "dataset", None), getattr(loader, "sampler", None)):
        if callable(getattr(part, "set_epoch", None)):
            part.set_epoch(epoch)
            return


def train_epoch(trainer: "Trainer", loader: Iterable[Any], epoch: int) -> dict[str, Any]:
    """One epoch of training steps over ``loader``'s batches; the epoch's log."""
    trainer.network.train()
    _set_epoch(loader, epoch)
    n_tasks = len(trainer.tasks)
    losses, weights = StepMeans(n_tasks, trainer.device, hold=True), StepMeans(n_tasks, trainer.device)
    for raw in loader:
        batch = _packed(trainer, raw)
        if len(batch) < 2 and trainer._batchnorm:
            continue  # batch normalization cannot train on one row
        values, applied = trainer._train_step(batch, epoch)
        losses.add(values)
        weights.add(applied)
    if losses.count == 0:
        raise PolytaskError("the training loader gave no batch")
    if trainer.scheduler is not None and trainer.config.scheduler_step == "epoch":
        trainer.scheduler.step()
    return {"epoch": epoch, "train_loss": dict(zip(trainer.task_names, losses.mean())),
            "weights": dict(zip(trainer.task_names, weights.mean()))}


def stream_losses(trainer: "Trainer", loader: Iterable[Any],
                  keep: int | None = None) -> tuple[dict[str, float], PackedTensors | None, torch.Tensor | None]:
    """Each task's loss over every batch of ``loader`` (see the module docstring), with the
    labels (a ``PackedTensors`` without features) and outputs of the first ``keep`` rows
    (None: all; 0: none, and None returned for both). A task whose loss is not finite although
    it has labels raises :class:`NonFiniteLossError`."""
    num = den = None
    ys: list[torch.Tensor] = []
    ms: list[torch.Tensor] = []
    outs: list[torch.Tensor] = []
    kept = 0
    plan = None
    network, was_training = trainer.network, trainer.network.training
    network.eval()
    try:
        with torch.no_grad():
            for raw in loader:
                batch = _packed(trainer, raw)
                plan = batch.plan
                outputs, _ = network.decode_packed(network.encode(batch.x), batch.x)
                counts = plan.label_counts(batch.m)
                part = plan(outputs, batch.y, batch.m) * counts.clamp(min=1.0)
                num = part if num is None else num + part
                den = counts if den is None else den + counts
                room = len(outputs) if keep is None else min(len(outputs), keep - kept)
                if room > 0:
                    ys.append(batch.y[:room])
                    ms.append(batch.m[:room])
                    outs.append(outputs[:room])
                    kept += room
    finally:
        network.train(was_training)
    if num is None or plan is None:
        return {n: math.nan for n in trainer.task_names}, None, None
    values = (num / den.clamp(min=1.0)).tolist()
    losses = {n: (float(v) if c > 0 else math.nan) for n, v, c in zip(trainer.task_names, values, den.tolist())}
    bad = [n for n, v, c in zip(trainer.task_names, values, den.tolist()) if c > 0 and not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(bad[0], trainer.epoch, losses[bad[0]])
    if not ys:
        return losses, None, None
    labels = PackedTensors(torch.empty(kept, 0), torch.cat(ys), torch.cat(ms), plan)
    return losses, labels, torch.cat(outs)


def resumable_source(train: Iterable[Any]) -> Any:
    """The dataset behind ``train`` (a ``DataLoader``'s, or ``train`` itself) when a checkpoint
    can carry its place: it has ``fingerprint()`` (what data it reads), ``state_dict()`` and
    ``load_state_dict()`` (its shuffle); else None."""
    source = getattr(train, "dataset", train)
    needed = ("fingerprint", "state_dict", "load_state_dict")
    return source if all(callable(getattr(source, name, None)) for name in needed) else None


def fit_loaders(trainer: "Trainer", train: Iterable[Any], val: Iterable[Any] | None = None,
                resume_from: str | Path | None = None) -> "TrainResult":
    """Train ``trainer`` on the batches of ``train``, early stopping on ``val`` (module
    docstring); ``resume_from``: a checkpoint of the same run to continue from (its loader's
    dataset must be :func:`resumable_source`)."""
    from polytask.training.optim import make_scheduler

    if val is None:
        trainer.stopping.mode = "none"
    if trainer.scheduler is None:
        steps = len(train) if trainer.config.scheduler_step == "step" and hasattr(train, "__len__") else 1
        trainer.scheduler = make_scheduler(trainer.config, trainer.optimizer, trainer.config.epochs * max(1, steps))
    if resume_from is not None:
        trainer.resume(resume_from)
    for cb in trainer.callbacks:
        cb.on_fit_start(trainer)
    try:
        while trainer.epoch < trainer.config.epochs and not trainer.finished:
            _run_epoch(trainer, train, val)
    finally:
        for cb in trainer.callbacks:
            cb.on_fit_end(trainer)
    return trainer.result()


def _run_epoch(trainer: "Trainer", train: Iterable[Any], val: Iterable[Any] | None) -> None:
    epoch = trainer.epoch
    for cb in trainer.callbacks:
        cb.on_epoch_start(trainer, epoch)
    logs = train_epoch(trainer, train, epoch)
    val_loss = {n: math.nan for n in trainer.task_names}
    if val is not None:
        metrics = trainer.encoders is not None and bool(trainer.config.val_metrics)
        val_loss, labels, outputs = stream_losses(trainer, val, keep=None if metrics else 0)
        logs["val_loss"] = val_loss
        if labels is not None and outputs is not None:
            logs["val_metrics"] = trainer._val_metrics(outputs, trainer.loss_plan().layout, labels)
    trainer.end_epoch(epoch, val_loss, logs)


__all__ = ["as_task_batch", "fit_loaders", "resumable_source", "stream_losses", "train_epoch"]
