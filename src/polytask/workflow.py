"""The end-to-end path a user takes: table -> tasks -> split -> preprocessing -> train MTL (and
its companions, such as the STL baseline) -> evaluate on validation and test. The CLI, the
scikit-learn estimators and the experiments all go through these functions.

Everything a run can vary is in three settings objects (``NetworkSpec``, ``TrainConfig``,
``DataConfig``) and in *setups* (:mod:`polytask.setups`): the shuffle control, transfer, auxiliary
weight schedules, checkpoints and the STL baseline are objects passed as ``setups=[...]``, not
parameters of these functions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from polytask.data.config import DataConfig
from polytask.data.prepare import Prepared, prepare
from polytask.data.tables import TableLike
from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.evaluate import metrics_by_task
from polytask.fitted import FittedModel
from polytask.models import input_size
from polytask.models.base import MultiTaskNetwork
from polytask.models.spec import NetworkSpec
from polytask.own_rows import assemble, starting_from
from polytask.setups import RunPlan, Setup
from polytask.tasks import TaskSource
from polytask.training.callbacks import Callback
from polytask.training.config import TrainConfig
from polytask.training.trainer import Trainer, TrainResult

#: Callbacks for the main run, or per run name (``{"mtl": [...], "stl": [...]}``).
CallbackSource = Sequence[Callback] | Mapping[str, Sequence[Callback]]


def split_metrics(model: FittedModel, data: TaskTensors, include_auxiliary: bool = True) -> dict[str, dict[str, float]]:
    """Per-task metrics of a fitted model on encoded tensors."""
    if len(data) == 0:
        return {}
    raw = model.raw_outputs_from_features(data.x)
    encoders = [e for e in model.encoders if include_auxiliary or not e.task.auxiliary]
    return metrics_by_task(encoders, raw, data.targets, data.masks)


def _build(plan: RunPlan) -> MultiTaskNetwork:
    size = input_size(plan.prepared.train.x)
    if plan.network_builder is not None:
        return plan.network_builder(size, plan.prepared.output_dims)
    return plan.spec.build(size, plan.prepared.output_dims)


def _summary(plan: RunPlan, trainer: Trainer, result: TrainResult, seconds: float) -> dict[str, Any]:
    return {
        "kind": plan.name,
        "arch": trainer.network.arch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "best_epoch": result.best_epoch,
        "train_seconds": seconds,
        "parameters": trainer.network.parameter_counts(),
        "balancer": trainer.config.balancer,
        "processes": trainer.world_size,
        "applied_weights": result.applied_weights,
        "history": [{k: h[k] for k in ("epoch", "train_loss", "val_loss", "val_metrics", "weights") if k in h}
                    for h in result.history],
        "controls": dict(plan.controls),
    }


def train_model(
    prepared: Prepared,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    *,
    setups: Sequence[Setup] = (),
    callbacks: Sequence[Callback] = (),
    name: str = "mtl",
) -> FittedModel:
    """Build and train one network on a prepared problem; ``setups`` shape the run.

    Seeding happens inside a forked RNG, so the caller's global random state is untouched and
    the same seed gives the same model. ``name`` is the run's name (``"mtl"`` for the main run,
    which setups such as transfer act on; ``"stl"`` for the baseline). For the STL baseline pass
    the settings of :func:`polytask.setups.stl_settings`.

    A network whose tasks share nothing (``independent_tasks``, the STL baseline) on data where
    no row labels two tasks (the multi-input setting) is trained task by task, each task's
    network on the rows that label it alone (:func:`_train_own_rows`).
    """
    plan = RunPlan(name, prepared, spec or NetworkSpec(), config or TrainConfig(), prepared.train, list(callbacks))
    for setup in setups:
        setup.configure(plan)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(plan.config.seed)
        network = _build(plan)
        if network.independent_tasks and len(plan.prepared.tasks) > 1 and plan.train_data.labels_disjoint():
            return _train_own_rows(plan, network, setups, callbacks)
        # a resumed run's earlier epochs were scored before it resumed, perhaps on other rows
        return _with_metrics(_train_plan(plan, network), plan.prepared, recorded=plan.resume_from is None)


def _train_plan(plan: RunPlan, network: MultiTaskNetwork) -> FittedModel:
    """Train ``network`` as ``plan`` says (inside the caller's seeded RNG)."""
    started = time.perf_counter()
    trainer = Trainer(network, plan.prepared.tasks, plan.prepared.encoders, plan.config,
                      callbacks=plan.callbacks, shared_lr_scale=plan.shared_lr_scale)
    result = trainer.fit(plan.train_data, plan.prepared.val, resume_from=plan.resume_from)
    seconds = time.perf_counter() - started
    if result.snapshots:
        network.load_state_dict(result.snapshots[max(result.snapshots)])
    network.eval().cpu()
    model = FittedModel(
        network=network,
        tasks=plan.prepared.tasks,
        encoders=plan.prepared.encoders,
        preprocessor=plan.prepared.preprocessor,
        snapshots={e: {k: v.cpu() for k, v in s.items()} for e, s in result.snapshots.items()},
        best_epoch=result.best_epoch,
        train_config=plan.config.to_dict(),
        summary=_summary(plan, trainer, result, seconds),
    )
    return model


def _train_own_rows(plan: RunPlan, network: MultiTaskNetwork, setups: Sequence[Setup],
                    callbacks: Sequence[Callback]) -> FittedModel:
    """Each task's network trained alone on the rows that label it, with the run's settings, from
    its part of ``network``'s initial state (:mod:`polytask.own_rows`); each task's run is named
    ``<run>/task<i>`` and shaped by the setups afresh (its own checkpoints, for instance)."""
    init = {k: v.detach().clone() for k, v in network.state_dict().items()}
    parts: dict[str, FittedModel] = {}
    for i, task in enumerate(plan.prepared.tasks):
        own = plan.prepared.only(task.name)
        sub = RunPlan(f"{plan.name}/task{i}", own, plan.spec, plan.config, own.train, list(callbacks),
                      network_builder=starting_from(plan, init))
        for setup in setups:
            setup.configure(sub)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(sub.config.seed)
            parts[task.name] = _train_plan(sub, _build(sub))
    return _with_metrics(assemble(plan, network, parts), plan.prepared)


def _with_metrics(model: FittedModel, prepared: Prepared, recorded: bool = False) -> FittedModel:
    """``model`` with its validation and test metrics in its summary. ``recorded``: the model is
    one training run's, so each task's validation metrics at its best epoch are already in the
    history (the same network state on the same rows; :func:`_recorded_val_metrics`)."""
    model.summary["val_metrics"] = (recorded and _recorded_val_metrics(model)) or split_metrics(model, prepared.val)
    model.summary["test_metrics"] = split_metrics(model, prepared.test)
    return model


def _recorded_val_metrics(model: FittedModel) -> dict[str, dict[str, float]] | None:
    """Each task's validation metrics as the trainer recorded them at the task's best epoch, the
    epoch whose snapshot predicts it; None when one is missing (metrics off, or no validation)."""
    history = {h["epoch"]: h.get("val_metrics") or {} for h in model.summary.get("history", [])}
    out = {}
    for encoder in model.encoders:
        name = encoder.task.name
        recorded = history.get(model.best_epoch.get(name, -1), {}).get(name)
        if recorded is None:
            return None
        out[name] = dict(recorded)
    return out


@dataclass
class FitReport:
    """The main (MTL) model and its companions (``"stl"``...) trained on one split, with their
    metrics side by side."""

    prepared: Prepared
    models: dict[str, FittedModel] = field(default_factory=dict)

    @property
    def mtl(self) -> FittedModel:
        return self.models["mtl"]

    @property
    def stl(self) -> FittedModel | None:
        return self.models.get("stl")

    def metrics(self, split: str = "test") -> dict[str, dict[str, dict[str, float]]]:
        """``{"mtl": {task: {metric: value}}, "stl": ...}`` on ``val`` or ``test``, main tasks only."""
        key = f"{split}_metrics"
        main = {t.name for t in self.prepared.tasks if not t.auxiliary}
        return {name: {t: m for t, m in model.summary[key].items() if t in main} for name, model in self.models.items()}

    def to_dict(self) -> dict[str, Any]:
        split = self.prepared.split
        out: dict[str, Any] = {
            "tasks": [t.to_dict() for t in self.prepared.tasks],
            "rows": {"train": len(split.train), "val": len(split.val), "test": len(split.test)},
        }
        for name, model in self.models.items():
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
                "controls": s.get("controls", {}),
            }
        return out


def _callbacks_for(callbacks: CallbackSource, name: str) -> list[Callback]:
    if isinstance(callbacks, Mapping):
        return list(callbacks.get(name, ()))
    return list(callbacks) if name == "mtl" else []


def fit(
    data: TableLike | Prepared,
    tasks: TaskSource | None = None,
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    *,
    data_config: DataConfig | None = None,
    setups: Sequence[Setup] = (),
    callbacks: CallbackSource = (),
) -> FitReport:
    """Train MTL on ``data`` (a table, or an already :func:`prepare`-d problem) and every
    companion run the setups ask for (``setups=[STLBaseline()]``: the STL baseline on the same
    split).

    ``tasks``: target column names (main tasks, kinds inferred), :class:`~polytask.Task`
    objects, or a :class:`~polytask.Targets` (main and auxiliary columns, kinds, weights).
    ``callbacks``: for the main run, or ``{"mtl": [...], "stl": [...]}`` per run.
    """
    config = config or TrainConfig()
    spec = spec or NetworkSpec()
    if isinstance(data, Prepared):
        if tasks is not None:
            raise PolytaskError("a prepared problem already has its tasks: do not pass tasks as well")
        prepared = data
    else:
        if tasks is None:
            raise PolytaskError("name the tasks to learn (target columns, polytask.Task or polytask.Targets)")
        prepared = prepare(data, tasks, data_config, seed=config.seed)
    report = FitReport(prepared)
    report.models["mtl"] = train_model(prepared, spec, config, setups=setups, callbacks=_callbacks_for(callbacks, "mtl"))
    main_plan = RunPlan("mtl", prepared, spec, config, prepared.train)
    for setup in setups:
        for name, (run_spec, run_config) in setup.companions(main_plan, report.mtl).items():
            report.models[name] = train_model(prepared, run_spec, run_config, setups=setups,
                                              callbacks=_callbacks_for(callbacks, name), name=name)
    return report
