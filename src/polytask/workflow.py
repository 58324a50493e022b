"""The end-to-end path a user takes: table -> tasks -> split -> preprocessing -> train MTL (and
STL) -> evaluate on validation and test. The CLI, the scikit-learn estimators and the
experiments all go through these functions.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from polytask.data.preprocessing import FeaturePreprocessor, MissingPolicy
from polytask.data.splits import Split, split_indices
from polytask.data.tables import TableLike, as_frame
from polytask.data.targets import TargetEncoder, infer_tasks, validate_targets
from polytask.data.tensors import TaskTensors, to_tensors
from polytask.errors import PolytaskError
from polytask.evaluate import task_metrics
from polytask.fitted import FittedModel
from polytask.models import build_network, input_size, matched_stl_trunk
from polytask.models.base import MultiTaskNetwork
from polytask.models.spec import NetworkSpec
from polytask.tasks import Task, TaskSet
from polytask.training.callbacks import Callback, CheckpointCallback
from polytask.training.config import TrainConfig
from polytask.training.trainer import Trainer, WeightSchedule


@dataclass
class Prepared:
    """A problem ready to train: tasks, split, fitted preprocessing and tensors per split."""

    frame: pd.DataFrame
    tasks: list[Task]
    split: Split
    preprocessor: FeaturePreprocessor
    encoders: list[TargetEncoder]
    train: TaskTensors
    val: TaskTensors
    test: TaskTensors

    @property
    def output_dims(self) -> dict[str, int]:
        return {e.task.name: e.output_dim for e in self.encoders}


def prepare(
    data: TableLike,
    targets: Sequence[str] | None = None,
    aux: Sequence[str] | None = None,
    kinds: dict[str, str] | None = None,
    weights: dict[str, float] | None = None,
    tasks: Sequence[Task] | None = None,
    features: Sequence[str] | None = None,
    split: Split | None = None,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    shuffle_split: bool = True,
    missing: MissingPolicy = "impute",
) -> Prepared:
    """Resolve tasks, validate targets, split rows and fit preprocessing on the training rows."""
    frame = as_frame(data).reset_index(drop=True)
    if tasks is None:
        tasks = infer_tasks(frame, list(targets or []), list(aux or []), kinds, weights)
    task_list = list(TaskSet(tuple(tasks)))
    validate_targets(frame, task_list)
    target_cols = {c for t in task_list for c in t.columns}
    if features is None:
        features = [c for c in frame.columns if c not in target_cols]
    else:
        absent = [c for c in features if c not in frame.columns]
        if absent:
            raise PolytaskError(f"feature column '{absent[0]}' is not in the data")
        clash = [c for c in features if c in target_cols]
        if clash:
            raise PolytaskError(f"column '{clash[0]}' is both a feature and a target")
    if split is None:
        split = split_indices(len(frame), val_fraction, test_fraction, seed, shuffle=shuffle_split)
    train_frame = frame.iloc[split.train]
    preprocessor = FeaturePreprocessor(missing=missing).fit(train_frame[list(features)])
    encoders = [TargetEncoder(t).fit(frame, split.train) for t in task_list]
    all_tensors = to_tensors(frame[list(features) + sorted(target_cols)], preprocessor, encoders)
    train = all_tensors.subset(split.train)
    for task, count in train.label_counts().items():
        if count == 0:
            raise PolytaskError(f"task '{task}' has no labels in the training rows")
    return Prepared(
        frame=frame,
        tasks=task_list,
        split=split,
        preprocessor=preprocessor,
        encoders=encoders,
        train=train,
        val=all_tensors.subset(split.val),
        test=all_tensors.subset(split.test),
    )


def split_metrics(model: FittedModel, data: TaskTensors, include_auxiliary: bool = True) -> dict[str, dict[str, float]]:
    """Per-task metrics of a fitted model on encoded tensors."""
    if len(data) == 0:
        return {}
    raw = model.raw_outputs_from_features(data.x)
    return {
        e.task.name: task_metrics(e, raw[e.task.name], data.targets[e.task.name].numpy(), data.masks[e.task.name].numpy())
        for e in model.encoders
        if include_auxiliary or not e.task.auxiliary
    }


def train_model(
    prepared: Prepared,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    stl: bool = False,
    match_params_to: int | None = None,
    callbacks: Sequence[Callback] = (),
    weight_schedule: WeightSchedule | None = None,
    train_data: TaskTensors | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    network_builder: Callable[[Any, dict[str, int]], MultiTaskNetwork] | None = None,
    shared_lr_scale: float = 1.0,
    val_metrics: bool = True,
) -> FittedModel:
    """Build and train one network (MTL, or STL when ``stl=True``) on a prepared problem.

    Seeding happens inside a forked RNG, so the caller's global random state is untouched and
    the same seed gives the same model. With ``checkpoint_dir`` a resumable checkpoint is
    written after every epoch (so a run stopped by a non-finite loss keeps its last good one);
    ``resume=True`` continues from the checkpoint found there. ``train_data`` replaces the
    prepared training tensors (the shuffle control); ``network_builder(input_dim, output_dims)``
    replaces building the network from ``spec`` and ``shared_lr_scale`` scales the shared
    parameters' learning rate (transfer from a trained trunk). ``val_metrics=False`` skips the
    per-epoch validation metrics (early stopping needs only the validation losses), which
    speeds up small runs.
    """
    spec = spec or NetworkSpec()
    config = config or TrainConfig()
    kwargs = spec.kwargs()
    arch = spec.arch
    if stl:
        # Each STL network is trained on its own loss alone: there is nothing to balance.
        config = TrainConfig.from_dict({**config.to_dict(), "balancer": "ew", "balancer_options": {}})
        arch = "stl"
        kwargs = {k: v for k, v in kwargs.items() if k in ("trunk", "head_hidden", "activation", "dropout", "norm", "conv_channels")}
        if match_params_to is not None:
            kwargs["trunk"] = tuple(
                matched_stl_trunk(input_size(prepared.train.x), prepared.output_dims, match_params_to, spec.trunk, spec.head_hidden,
                                  kwargs.get("conv_channels"))
            )
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        if network_builder is not None and not stl:
            network = network_builder(input_size(prepared.train.x), prepared.output_dims)
        else:
            network = build_network(arch, input_size(prepared.train.x), prepared.output_dims, **kwargs)
        callbacks = list(callbacks)
        if checkpoint_dir is not None:
            callbacks.append(CheckpointCallback(checkpoint_dir))
        resume_from = None
        if resume:
            if checkpoint_dir is None or not (Path(checkpoint_dir) / "checkpoint.json").exists():
                raise PolytaskError(f"no checkpoint to resume from in '{checkpoint_dir}'")
            resume_from = str(checkpoint_dir)
        trainer = Trainer(
            network, prepared.tasks, prepared.encoders, config, callbacks=callbacks, weight_schedule=weight_schedule,
            shared_lr_scale=1.0 if stl else shared_lr_scale, val_metrics=val_metrics,
        )
        result = trainer.fit(train_data if train_data is not None else prepared.train, prepared.val, resume_from=resume_from)
    seconds = time.perf_counter() - started
    last = max(result.snapshots) if result.snapshots else None
    if last is not None:
        network.load_state_dict(result.snapshots[last])
    network.eval().cpu()
    model = FittedModel(
        network=network,
        tasks=prepared.tasks,
        encoders=prepared.encoders,
        preprocessor=prepared.preprocessor,
        snapshots={e: {k: v.cpu() for k, v in s.items()} for e, s in result.snapshots.items()},
        best_epoch=result.best_epoch,
        train_config=config.to_dict(),
        summary={
            "kind": "stl" if stl else "mtl",
            "arch": arch,
            "epochs_run": result.epochs_run,
            "stopped_early": result.stopped_early,
            "best_epoch": result.best_epoch,
            "train_seconds": seconds,
            "parameters": network.parameter_counts(),
            "balancer": trainer.balancer.name,
            "applied_weights": result.applied_weights,
            "history": [
                {k: h[k] for k in ("epoch", "train_loss", "val_loss", "weights") if k in h} for h in result.history
            ],
        },
    )
    model.summary["val_metrics"] = split_metrics(model, prepared.val)
    model.summary["test_metrics"] = split_metrics(model, prepared.test)
    return model


@dataclass
class FitReport:
    """MTL (and optionally STL) trained on one split, with their metrics side by side."""

    prepared: Prepared
    mtl: FittedModel
    stl: FittedModel | None = None

    def metrics(self, split: str = "test") -> dict[str, dict[str, dict[str, float]]]:
        """``{"mtl": {task: {metric: value}}, "stl": ...}`` on ``val`` or ``test``, main tasks only."""
        key = f"{split}_metrics"
        main = {t.name for t in self.prepared.tasks if not t.auxiliary}
        return {
            name: {t: m for t, m in model.summary[key].items() if t in main}
            for name, model in (("mtl", self.mtl), ("stl", self.stl))
            if model is not None
        }

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tasks": [t.to_dict() for t in self.prepared.tasks],
            "rows": {"train": len(self.prepared.split.train), "val": len(self.prepared.split.val), "test": len(self.prepared.split.test)},
        }
        for name, model in (("mtl", self.mtl), ("stl", self.stl)):
            if model is None:
                continue
            s = model.summary
            out[name] = {
                "val": s["val_metrics"],
                "test": s["test_metrics"],
                "best_epoch": s["best_epoch"],
                "epochs_run": s["epochs_run"],
                "parameters": s["parameters"],
                "train_seconds": s["train_seconds"],
                "balancer": s["balancer"],
                "mean_applied_weights": {t: float(np.mean(w)) if w else float("nan") for t, w in s["applied_weights"].items()},
            }
        return out


def fit(
    data: TableLike,
    targets: Sequence[str] | None = None,
    aux: Sequence[str] | None = None,
    kinds: dict[str, str] | None = None,
    weights: dict[str, float] | None = None,
    tasks: Sequence[Task] | None = None,
    features: Sequence[str] | None = None,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    stl: bool = False,
    match_params: bool = False,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    split_seed: int | None = None,
    split: Split | None = None,
    missing: MissingPolicy = "impute",
    callbacks: Sequence[Callback] = (),
    stl_callbacks: Sequence[Callback] = (),
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    aux_weight_schedule: WeightSchedule | None = None,
    shuffle_aux: bool = False,
    shuffle_seed: int | None = None,
    init_from: Any = None,
    freeze_trunk: bool = False,
    trunk_lr_scale: float = 1.0,
) -> FitReport:
    """Train MTL on ``data`` (and, with ``stl=True``, the STL baseline on the same split).

    ``checkpoint_dir``: per-epoch resumable checkpoints in ``checkpoint_dir/mtl`` (and
    ``/stl``); ``resume=True`` continues both from there.

    Auxiliary tasks (``aux``) are trained, never predicted. ``aux_weight_schedule`` (see
    :mod:`polytask.auxiliary.schedules`) varies their weight over training; ``shuffle_aux``
    permutes their targets across the training rows (the shuffle control, seeded with
    ``shuffle_seed``, default the training seed). ``init_from`` (a model directory or
    :class:`FittedModel`) starts MTL from that model's shared trunk with new heads, frozen
    (``freeze_trunk``) or fine-tuned at ``trunk_lr_scale`` times the learning rate; the STL
    baseline always trains from scratch.
    """
    config = config or TrainConfig()
    prepared = prepare(
        data, targets, aux, kinds, weights, tasks, features, split=split,
        val_fraction=val_fraction, test_fraction=test_fraction,
        seed=config.seed if split_seed is None else split_seed, missing=missing,
    )
    controls: dict[str, Any] = {}
    train_data = None
    if shuffle_aux:
        from polytask.auxiliary.shuffle import shuffle_auxiliary

        seed = config.seed if shuffle_seed is None else shuffle_seed
        train_data = shuffle_auxiliary(prepared.train, prepared.tasks, seed)
        controls["shuffle_aux"] = {"seed": seed}
    if aux_weight_schedule is not None and hasattr(aux_weight_schedule, "to_dict"):
        controls["aux_weight_schedule"] = aux_weight_schedule.to_dict()
    builder, scale = None, 1.0
    if init_from is not None:
        from polytask.transfer import TransferStart

        start = TransferStart(init_from, freeze_trunk, trunk_lr_scale)
        prepared = start.prepared(prepared)
        if train_data is not None:
            train_data = TaskTensors(prepared.train.x, train_data.targets, train_data.masks)
        builder, scale = start.builder(), start.shared_lr_scale
        controls["init_from"] = start.to_dict()
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    mtl = train_model(
        prepared, spec, config, callbacks=callbacks, checkpoint_dir=ckpt / "mtl" if ckpt else None, resume=resume,
        weight_schedule=aux_weight_schedule, train_data=train_data, network_builder=builder, shared_lr_scale=scale,
    )
    mtl.summary.update(controls)
    baseline = None
    if stl:
        target = mtl.network.parameter_counts()["total"] if match_params else None
        baseline = train_model(
            prepared, spec, config, stl=True, match_params_to=target, callbacks=stl_callbacks, train_data=train_data,
            checkpoint_dir=ckpt / "stl" if ckpt else None, resume=resume and ckpt is not None and (ckpt / "stl" / "checkpoint.json").exists(),
        )
    return FitReport(prepared, mtl, baseline)
