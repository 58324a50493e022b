"""The training loop: joint back-propagation on all task outputs.

One step: ``z = encode(x)``, the packed outputs ``decode_packed(z, x)``, the masked loss vector
``(alpha_1 L_1, ..., alpha_T L_T)`` (one expression per kind of loss, :class:`LossPlan`), then the
balancer fills the gradients, the architecture's own penalty and the L2 term
``l2 * sum ||W||^2`` are added, gradients are clipped, and the optimizer steps. After each epoch
the network is evaluated on validation data and early stopping records each task's best epoch.
The loop knows the balancer only through its interface. What does not change between steps
(parameter lists, the loss plan, the packed targets and masks) is built once per run.

A loss that is not finite, or that grows to more than :data:`DIVERGENCE_FACTOR` times its value
at the first step (at least 1), stops training with an error naming the task: the run has
diverged (a learning rate too high, usually), and going on would only save a useless model.

Everything a run needs to continue exactly where it stopped (network, optimizer, scheduler,
balancer, early stopping, the random streams of batch order and dropout, the history and every
callback's state) is in :meth:`Trainer.state_dict`; a checkpoint is that dict written as one file.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from polytask.balancers import Balancer, StepContext, get as get_balancer
from polytask.balancers.base import LOCAL
from polytask.data.targets import TargetEncoder
from polytask.data.tensors import TaskTensors
from polytask.errors import DivergedLossError, NonFiniteLossError, PolytaskError
from polytask.evaluate import TaskScorer
from polytask.losses import LossPlan, OutputLayout
from polytask.models.base import MultiTaskNetwork
from polytask.tasks import Task
from polytask.training import distributed
from polytask.training.callbacks import Callback
from polytask.training.checkpoint import fingerprint, load_checkpoint
from polytask.training.config import TrainConfig
from polytask.training.direct_step import DirectStep
from polytask.training.early_stopping import EarlyStopping
from polytask.training.optim import make_optimizer, make_scheduler
from polytask.training.packed import PackedTensors
from polytask.training.precision import ScaleGradient, autocast, check_precision, compiled, gradient_scaler, widen
from polytask.training.step_means import StepMeans
from polytask.training.threads import default_threads, torch_threads

#: Settings that may differ between a checkpoint and the run that resumes it.
RESUMABLE_CHANGES = ("epochs", "device", "val_metrics", "threads", "compile")
#: A training loss above this many times its first value (or 1, if larger) means divergence.
DIVERGENCE_FACTOR = 1e4


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when available, else CPU)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PolytaskError(f"unknown device '{name}' (use cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PolytaskError(f"device '{name}' was asked for but CUDA is not available")
    return device


@dataclass
class TrainResult:
    """What training produced: per-epoch history, best epochs and the snapshots behind them."""

    history: list[dict[str, Any]]
    best_epoch: dict[str, int]
    snapshots: dict[int, dict[str, torch.Tensor]]
    epochs_run: int
    stopped_early: bool
    applied_weights: dict[str, list[float]] = field(default_factory=dict)


def predict_packed(network: MultiTaskNetwork, x: torch.Tensor, batch_size: int = 4096) -> tuple[torch.Tensor, OutputLayout]:
    """The packed network outputs (n, H) and their layout, in eval mode, in batches, without gradients."""
    was_training = network.training
    network.eval()
    chunks: list[torch.Tensor] = []
    layout: OutputLayout | None = None
    try:
        with torch.no_grad():
            for start in range(0, max(1, x.shape[0]), batch_size):
                rows = x[start : start + batch_size]
                out, layout = network.decode_packed(network.encode(rows), rows)
                chunks.append(out)
    finally:
        network.train(was_training)
    assert layout is not None
    return (chunks[0] if len(chunks) == 1 else torch.cat(chunks)), layout


def predict_raw(network: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> dict[str, torch.Tensor]:
    """Network outputs in eval mode, in batches, without gradients."""
    if isinstance(network, MultiTaskNetwork):
        out, layout = predict_packed(network, x, batch_size)
        return layout.split(out)
    was_training = network.training
    network.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start in range(0, max(1, x.shape[0]), batch_size):
            for k, v in network(x[start : start + batch_size]).items():
                chunks.setdefault(k, []).append(v)
    network.train(was_training)
    return {k: torch.cat(v) for k, v in chunks.items()}


def callback_keys(callbacks: Sequence[Callback]) -> list[str]:
    """A stable key per callback for its saved state: its ``state_key``, numbered on repeats."""
    keys: list[str] = []
    for cb in callbacks:
        base = cb.state_key
        keys.append(base if base not in keys else f"{base}#{sum(k.split('#')[0] == base for k in keys) + 1}")
    return keys


class Trainer:
    """Trains a :class:`MultiTaskNetwork` on tasks with a balancer, callbacks and early stopping.

    ``alphas`` holds the task weights ``alpha_t`` in force (initially each task's ``weight``);
    a callback may change them between steps (auxiliary weight schedules do, at each epoch).
    ``shared_lr_scale`` puts the shared parameters in their own optimizer group at
    ``lr * shared_lr_scale`` (0 freezes them: transfer from a trained trunk).
    """

    def __init__(
        self,
        network: MultiTaskNetwork,
        tasks: Sequence[Task],
        encoders: Sequence[TargetEncoder] | None = None,
        config: TrainConfig | None = None,
        balancer: Balancer | None = None,
        callbacks: Sequence[Callback] = (),
        shared_lr_scale: float = 1.0,
    ) -> None:
        self.config = config or TrainConfig()
        self.device = distributed.process_device(resolve_device(self.config.device))
        self.network = network.to(self.device)
        #: The data-parallel group (training/distributed.py), or None in a single process.
        self.parallel = distributed.join(self.device)
        if self.parallel is not None:
            self.parallel.broadcast(self.network)
        self.tasks = list(tasks)
        self.task_names = [t.name for t in self.tasks]
        missing = [n for n in self.task_names if n not in network.task_names]
        if missing:
            raise PolytaskError(f"the network has no output for task '{missing[0]}'")
        self.encoders = list(encoders) if encoders is not None else None
        self.balancer = balancer or get_balancer(self.config.balancer, **self.config.balancer_options)
        self.balancer.setup(self.task_names)
        self.balancer.to(self.device)
        main = self.parallel is None or self.parallel.rank == 0
        self.callbacks = [cb for cb in callbacks if main or not cb.main_process_only]
        self.shared_lr_scale = float(shared_lr_scale)
        self.alphas = torch.tensor([t.weight for t in self.tasks], device=self.device)
        self.step = 0  # optimizer steps taken
        self.epoch = 0  # the next epoch to run
        self.finished = False  # early stopping has ended training
        self.history: list[dict[str, Any]] = []
        #: The batch of the step in progress (callbacks that re-evaluate losses read it).
        self.batch: PackedTensors | None = None
        self.train_data: TaskTensors | None = None
        #: A loader's dataset whose place in its shuffle a checkpoint saves (see :func:`resumable_source`).
        self.data_source: Any = None
        self._fingerprint: str | None = None
        self.batch_order = torch.Generator().manual_seed(self.config.seed)
        self.optimizer = make_optimizer(self.config, self._parameter_groups())
        self._direct = DirectStep(self.optimizer)
        # precision and compilation (training/precision.py)
        check_precision(self.config.precision, self.device)
        self.scaler = gradient_scaler(self.config.precision, self.device)
        self._encode, self._decode = self.network.encode, self.network.decode_packed
        if self.config.compile:
            self._encode, self._decode = compiled(self._encode), compiled(self._decode)
            if self.balancer.requires != "losses":
                warnings.warn(f"--compile: the gradient engine cannot read a compiled graph; balancer '{self.config.balancer}' "
                              "takes the exact generic path (one backward pass per task)", stacklevel=2)
        self.scheduler: Any = None
        self.stopping = EarlyStopping(
            self.task_names, [t.name for t in self.tasks if not t.auxiliary], self.config.early_stopping, self.config.patience
        )
        # what every step hands the balancer, built once
        self._decay = [p for _, p in self.network.named_parameters() if p.ndim > 1]
        self._params = list(self.network.parameters())
        self._shared = list(self.network.shared_parameters())
        self._task_params = {t: list(self.network.task_parameters(t)) for t in self.task_names}
        self._last_shared = list(self.network.last_shared_parameters())
        self._batchnorm = any(isinstance(m, nn.BatchNorm1d) for m in self.network.modules())
        self._plan: LossPlan | None = None
        #: The validation data last scored and its scorer (its labels' part is made once).
        self._scorer: tuple[PackedTensors, TaskScorer] | None = None
        #: The first step's loss of each task (at least 1): the scale divergence is judged by.
        self._loss_scale: torch.Tensor | None = None
        #: (the scale, the largest loss it allows): the divergence limit, kept with its scale.
        self._loss_limit: tuple[torch.Tensor, torch.Tensor] | None = None
        #: (alphas, their version, all equal to 1, the weighted tasks): see _task_weights.
        self._alphas_seen: tuple[torch.Tensor, int, bool, torch.Tensor | None] | None = None

    def _parameter_groups(self) -> list[dict[str, Any]]:
        """Every parameter (network and balancer) at ``lr``, the shared ones at
        ``lr * shared_lr_scale`` when that is not 1."""
        params = list(self.network.parameters()) + list(self.balancer.parameters())
        if self.shared_lr_scale == 1.0:
            return [{"params": params}]
        shared_ids = {id(p) for p in self.network.shared_parameters()}
        groups = [
            {"params": [p for p in params if id(p) not in shared_ids]},
            {"params": [p for p in params if id(p) in shared_ids], "lr": self.config.lr * self.shared_lr_scale},
        ]
        return [g for g in groups if g["params"]]

    # -- packing -----------------------------------------------------------------------------
    def loss_plan(self, x: torch.Tensor | None = None) -> LossPlan:
        """How the losses are computed from packed outputs (built once; a network that does not
        declare its output layout is run once, in eval mode, on two rows of ``x``)."""
        if self._plan is None:
            layout = self.network.output_layout()
            if layout is None:
                if x is None:
                    raise PolytaskError("the network declares no output layout: give rows to probe it with")
                layout = predict_packed(self.network, x[:2].to(self.device))[1]
            self._plan = LossPlan(self.tasks, layout)
        return self._plan

    def pack(self, data: TaskTensors) -> PackedTensors:
        """``data`` on the trainer's device, targets and masks packed for the loss."""
        return PackedTensors.of(data, self.loss_plan(data.x), self.device)

    # -- one step ----------------------------------------------------------------------------
    def context(self, x: torch.Tensor, targets: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], epoch: int) -> tuple[StepContext, torch.Tensor]:
        """Forward pass of one batch given per task: the balancer's context and the unweighted
        loss vector."""
        plan = self.loss_plan(x)
        y, m = plan.pack(targets, masks)
        return self.packed_context(x, y, m, epoch)

    def packed_context(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None, epoch: int) -> tuple[StepContext, torch.Tensor]:
        """Forward pass of one batch with packed targets ``y`` and masks ``m`` (None: every label
        observed, so every task with a positive weight is present)."""
        with autocast(self.config.precision, self.device):
            z = self._encode(x)
            outputs, layout = self._decode(z, x)
        outputs = widen(outputs)
        scale = 1.0
        if self.scaler is not None:  # fp16: the outputs' gradients carry the scaler's factor
            factor = self.scaler.scale(torch.ones((), device=self.device))
            outputs, scale = ScaleGradient.apply(outputs, factor), float(factor)
        plan = self.loss_plan(x)
        if layout is not plan.layout and layout != plan.layout:
            raise PolytaskError("the network's output layout changed during training")
        if self.parallel is None:
            raw = plan(outputs, y, m)
            counts = None if m is None else plan.label_counts(m)
        else:  # data parallel: global loss values and label counts, gradients through this shard
            raw, _, counts = self.parallel.losses(*plan.sums(outputs, y, m))
        unit, weighted = self._task_weights()
        ctx = StepContext(
            losses=raw if unit else raw * self.alphas,
            task_names=self.task_names,
            shared_params=self._shared,
            task_params=self._task_params,
            representation=z,
            last_shared_params=self._last_shared,
            step=self.step,
            epoch=epoch,
            reducer=self.parallel or LOCAL,
            grad_scale=scale,
            compiled=self.config.compile,
            # labelled (on any process) and weighted
            present=weighted if m is None else ((counts > 0) & (self.alphas > 0)).cpu(),
        )
        return ctx, raw

    def _task_weights(self) -> tuple[bool, torch.Tensor | None]:
        """Whether every ``alpha_t`` is 1, and which tasks have a positive weight (None: all),
        worked out again only when ``alphas`` is replaced or changed in place."""
        alphas = self.alphas
        seen = self._alphas_seen
        if seen is None or seen[0] is not alphas or seen[1] != alphas._version:
            positive = alphas > 0
            weighted = None if bool(positive.all()) else positive.cpu()
            seen = self._alphas_seen = (alphas, alphas._version, bool((alphas == 1).all()), weighted)
        return seen[2], (None if seen[3] is None else seen[3].clone())

    def _check_losses(self, values: torch.Tensor, epoch: int) -> None:
        """Stop on a non-finite loss, or one that has grown by orders of magnitude."""
        if self._loss_scale is None and bool(torch.isfinite(values).all()):
            self._loss_scale = values.clamp(min=1.0)
        scale = self._loss_scale if self._loss_scale is not None else torch.ones_like(values)
        if self._loss_limit is None or self._loss_limit[0] is not scale:
            self._loss_limit = (scale, scale * DIVERGENCE_FACTOR)
        ok = values <= self._loss_limit[1]  # False for NaN
        if bool(ok.all()):
            return
        bad = int((~ok).nonzero()[0, 0])
        value = float(values[bad])
        if not math.isfinite(value):
            raise NonFiniteLossError(self.task_names[bad], epoch, value)
        raise DivergedLossError(self.task_names[bad], epoch, value, float(scale[bad]), self.config.lr)

    def _train_step(self, batch: PackedTensors, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.batch = batch
        ctx, raw = self.packed_context(batch.x, batch.y, batch.mask, epoch)
        values = raw.detach()
        self._check_losses(values, epoch)
        for cb in self.callbacks:
            cb.on_before_backward(self, ctx)
        direct = self._direct_step()
        direct.zero_grad()
        weights = self.balancer.backward(ctx)
        self._combine_gradients(ctx)
        self._add_regularisers()
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when the gradients overflowed
            self.scaler.update()
        else:
            direct.step()
        if self.scheduler is not None and self.config.scheduler_step == "step":
            self.scheduler.step()
        for cb in self.callbacks:
            cb.on_step_end(self, ctx, weights)
        self.step += 1
        if not isinstance(weights, torch.Tensor) or weights.requires_grad:  # a balancer's list, or a graph's tensor
            weights = torch.as_tensor(weights).detach()
        return values, weights

    def _direct_step(self) -> DirectStep:
        """The optimizer's step without torch.optim's per-call bookkeeping (built again if
        ``self.optimizer`` was replaced)."""
        if self._direct.optimizer is not self.optimizer:
            self._direct = DirectStep(self.optimizer)
        return self._direct

    def _combine_gradients(self, ctx: StepContext) -> None:
        """After the balancer: the processes' gradients added up (data parallel) and the fp16
        scale taken out (the balancer's own gradients are true ones: they are scaled first so
        that unscaling leaves them as they are)."""
        if self.scaler is not None:
            for p in self.balancer.parameters():
                if p.grad is not None:
                    p.grad.mul_(ctx.grad_scale)
        if self.parallel is not None:
            self.parallel.reduce_gradients(self._params)
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)

    def _add_regularisers(self) -> None:
        """The architecture's penalty, the L2 term and gradient clipping, after the balancer."""
        penalty = self.network.penalty()
        if penalty is not None:
            penalty.backward()
        if self.config.l2 > 0:
            with torch.no_grad():
                for p in self._decay:
                    if p.grad is None:
                        p.grad = 2 * self.config.l2 * p.detach().clone()
                    else:
                        p.grad.add_(p.detach(), alpha=2 * self.config.l2)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.config.grad_clip)

    # -- one epoch ---------------------------------------------------------------------------
    def _batches(self, n_rows: int) -> list[torch.Tensor]:
        """This epoch's row indices, batch by batch (a last batch of one row is dropped when
        batch normalization cannot train on it)."""
        order = torch.randperm(n_rows, generator=self.batch_order)
        size = self.config.batch_size * self.world_size  # --batch-size is per process
        batches = list(order.split(size))
        if self._batchnorm and n_rows >= 2 and len(batches[-1]) < 2 * self.world_size:
            batches.pop()
        return batches if self.parallel is None else [self.parallel.shard(b) for b in batches]

    @property
    def world_size(self) -> int:
        """How many processes train this network together (1 without data parallelism)."""
        return 1 if self.parallel is None else self.parallel.world_size

    def _train_epoch(self, train: PackedTensors, epoch: int) -> dict[str, Any]:
        self.network.train()
        losses, weights = StepMeans(len(self.tasks), self.device, hold=True), StepMeans(len(self.tasks), self.device)
        for rows in self._batches(len(train)):
            values, applied = self._train_step(train.rows(rows), epoch)
            losses.add(values)
            weights.add(applied)
        if self.scheduler is not None and self.config.scheduler_step == "epoch":
            self.scheduler.step()
        return {
            "epoch": epoch,
            "train_loss": dict(zip(self.task_names, losses.mean())),
            "weights": dict(zip(self.task_names, weights.mean())),
        }

    def _validate(self, val: PackedTensors | None, epoch: int, logs: dict[str, Any]) -> dict[str, float]:
        if val is None:
            return {n: math.nan for n in self.task_names}
        outputs, layout = self._predict_all(val.x)
        val_loss = self._packed_losses(outputs, val)
        for name, value in val_loss.items():
            if not math.isfinite(value) and val.masks[name].any():
                raise NonFiniteLossError(name, epoch, value)
        logs["val_loss"] = val_loss
        logs["val_metrics"] = self._val_metrics(outputs, layout, val)
        return val_loss

    def _predict_all(self, x: torch.Tensor) -> tuple[torch.Tensor, OutputLayout]:
        """Packed outputs of every row of ``x`` (data parallel: each process predicts its shard
        and the outputs are gathered)."""
        if self.parallel is None:
            return predict_packed(self.network, x)
        rows = self.parallel.shard(torch.arange(x.shape[0], device=x.device))
        local, layout = predict_packed(self.network, x.index_select(0, rows))
        return self.parallel.gather(local)[0], layout

    def run_epoch(self, train: TaskTensors | PackedTensors, val: TaskTensors | PackedTensors | None) -> dict[str, Any]:
        """Train one epoch, validate, update early stopping and call the epoch hooks."""
        train = train if isinstance(train, PackedTensors) else self.pack(train)
        val = val if val is None or isinstance(val, PackedTensors) else self.pack(val)
        epoch = self.epoch
        if self.parallel is not None:
            self.parallel.seed_epoch(self.config.seed, epoch)
        for cb in self.callbacks:
            cb.on_epoch_start(self, epoch)
        logs = self._train_epoch(train, epoch)
        self.end_epoch(epoch, self._validate(val, epoch, logs), logs)
        return logs

    def end_epoch(self, epoch: int, val_loss: dict[str, float], logs: dict[str, Any]) -> None:
        """After an epoch's training and validation: early stopping, the history, the epoch hooks."""
        logs["improved"] = self.stopping.update(epoch, val_loss, self.network)
        self.history.append(logs)
        self.epoch = epoch + 1
        self.finished = self.stopping.should_stop
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, logs)

    def _packed_losses(self, outputs: torch.Tensor, data: PackedTensors) -> dict[str, float]:
        """Masked loss of each task (NaN for a task with no label in ``data``)."""
        values = data.plan.blockwise(outputs, data.y, data.mask).tolist()
        counts = data.label_counts().tolist()
        return {n: (float(v) if c > 0 else math.nan) for n, v, c in zip(self.task_names, values, counts)}

    def evaluate_losses(self, data: TaskTensors | PackedTensors) -> dict[str, float]:
        """Masked loss of each task on ``data`` (NaN for a task with no label there)."""
        packed = data if isinstance(data, PackedTensors) else self.pack(data)
        return self._packed_losses(predict_packed(self.network, packed.x)[0], packed)

    def _val_metrics(self, outputs: torch.Tensor, layout: OutputLayout, data: PackedTensors) -> dict[str, dict[str, float]]:
        """Each task's metrics on ``data`` from its packed ``outputs`` (scored on the host)."""
        if self.encoders is None or not self.config.val_metrics:
            return {}
        if self._scorer is None or self._scorer[0] is not data:
            self._scorer = (data, TaskScorer(self.encoders, *data.host_labels()))
        return self._scorer[1].packed(outputs.cpu().numpy(), layout)

    # -- the run -----------------------------------------------------------------------------
    def fit(self, train: TaskTensors | Iterable[Any], val: TaskTensors | Iterable[Any] | None = None,
            resume_from: str | Path | None = None) -> TrainResult:
        """Train; validation data drives early stopping (without it, the last epoch is kept).

        ``train`` and ``val`` are tensors, or any iterables of batches such as a ``DataLoader``
        (the batch format is in :mod:`polytask.training.loader`).
        ``resume_from``: a checkpoint directory; training continues from its state, exactly
        as the uninterrupted run would have (a run that had stopped early stays stopped).
        """
        if not isinstance(train, TaskTensors):
            return self._fit_loaders(train, val, resume_from)
        if len(train) == 0:
            raise PolytaskError("no training rows")
        train = train.to(self.device)
        val = val.to(self.device) if val is not None and len(val) > 0 else None
        if val is None:
            self.stopping.mode = "none"
        self.train_data = train
        packed_train = self.pack(train)
        packed_val = self.pack(val) if val is not None else None
        if self.scheduler is None:
            steps = max(1, len(self._batches(len(train)))) if self.config.scheduler_step == "step" else 1
            self.scheduler = make_scheduler(self.config, self.optimizer, self.config.epochs * steps)
        if resume_from is not None:
            self.resume(resume_from)
        threads = self.config.threads if self.config.threads is not None else default_threads(self.network)
        with torch_threads(threads if self.device.type == "cpu" else None):
            for cb in self.callbacks:
                cb.on_fit_start(self)
            try:
                while self.epoch < self.config.epochs and not self.finished:
                    self.run_epoch(packed_train, packed_val)
            finally:
                for cb in self.callbacks:
                    cb.on_fit_end(self)
        return self.result()

    def _fit_loaders(self, train: Iterable[Any], val: Any, resume_from: str | Path | None) -> TrainResult:
        from polytask.training.loader import fit_loaders, resumable_source

        self.data_source = resumable_source(train)
        if self.data_source is not None:
            self._fingerprint = self.data_source.fingerprint()
        elif resume_from is not None:
            raise PolytaskError("resuming from a checkpoint needs the training tensors, or a loader over a dataset with "
                                "fingerprint(), state_dict() and load_state_dict() (as polytask's StreamDataset)")
        if isinstance(val, TaskTensors):
            val = [val] if len(val) else None
        threads = self.config.threads if self.config.threads is not None else default_threads(self.network)
        with torch_threads(threads if self.device.type == "cpu" else None):
            return fit_loaders(self, train, val, resume_from)

    def result(self) -> TrainResult:
        return TrainResult(
            history=self.history,
            best_epoch={t: self.stopping.epoch_of(t) for t in self.task_names},
            snapshots=dict(self.stopping.snapshots),
            epochs_run=self.epoch,
            stopped_early=self.finished,
            applied_weights={n: [h["weights"][n] for h in self.history] for n in self.task_names},
        )

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (see the module docstring)."""
        rng: dict[str, Any] = {"batch_order": self.batch_order.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "balancer": self.balancer.state_dict(),  # an nn.Module's: parameters and extra state
            "stopping": self.stopping.state_dict(),
            "progress": {"epoch": self.epoch, "step": self.step, "finished": self.finished},
            "alphas": self.alphas,
            "loss_scale": self._loss_scale,
            "grad_scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "history": self.history,
            "rng": rng,
            "callbacks": {k: cb.state_dict() for k, cb in zip(callback_keys(self.callbacks), self.callbacks)},
            "data_order": self.data_source.state_dict() if self.data_source is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.balancer.load_state_dict(state["balancer"])
        self.stopping.load_state_dict(state["stopping"])
        progress = state["progress"]
        self.epoch, self.step, self.finished = int(progress["epoch"]), int(progress["step"]), bool(progress["finished"])
        self.alphas = state["alphas"].to(self.device)
        scale = state.get("loss_scale")
        self._loss_scale = None if scale is None else scale.to(self.device)
        if self.scaler is not None and state.get("grad_scaler") is not None:
            self.scaler.load_state_dict(state["grad_scaler"])
        self.history = list(state["history"])
        self.batch_order.set_state(state["rng"]["batch_order"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        if self.data_source is not None and state.get("data_order") is not None:
            self.data_source.load_state_dict(state["data_order"])
        saved = state.get("callbacks", {})
        for key, cb in zip(callback_keys(self.callbacks), self.callbacks):
            if key in saved:
                cb.load_state_dict(saved[key])

    def checkpoint_header(self) -> dict[str, Any]:
        """What a checkpoint records beside the state: the epoch it ends and everything the run
        depends on (training options, tasks, network, trunk learning-rate scale, the settings of
        callbacks that have them, a fingerprint of the training data); a resume with any of them
        changed is refused (:func:`check_same_run`)."""
        if self._fingerprint is None and self.train_data is not None:
            data = self.train_data
            self._fingerprint = fingerprint(data.x, *[data.targets[n] for n in self.task_names], *[data.masks[n] for n in self.task_names])
        settings = {k: cb.to_dict() for k, cb in zip(callback_keys(self.callbacks), self.callbacks)
                    if callable(getattr(cb, "to_dict", None))}
        return {
            "epoch": self.epoch - 1,
            "config": self.config.to_dict(),
            "network": {"arch": self.network.arch, "config": self.network.config()},
            "tasks": [t.to_dict() for t in self.tasks],
            "shared_lr_scale": self.shared_lr_scale,
            "callbacks": settings,
            "data": self._fingerprint,
            "processes": self.world_size,
        }

    def resume(self, directory: str | Path) -> None:
        """Load the checkpoint in ``directory`` after checking it was made by this same run."""
        header, state = load_checkpoint(directory)
        check_same_run(header, self.checkpoint_header(), directory)
        try:
            self.load_state_dict(state)
        except Exception as exc:  # a checkpoint that passed the header check yet does not fit
            raise PolytaskError(f"cannot resume from '{directory}': its state does not fit this run "
                                f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _refuse(directory: str | Path, what: str, old: Any, new: Any, why: str = "") -> PolytaskError:
    return PolytaskError(f"cannot resume from '{directory}': it was made with {what}={old!r}, this run has "
                         f"{what}={new!r}{why}")


def _check_epochs(old: dict[str, Any], new: dict[str, Any], done: int, depends: bool, directory: str | Path) -> None:
    """``epochs`` may grow (or shrink down to the epochs already run) unless the schedule spans them."""
    if new.get("epochs", done) < done:
        raise PolytaskError(f"cannot resume from '{directory}': it has already run {done} epochs, this run has epochs={new['epochs']}")
    if depends and "epochs" in old and old["epochs"] != new["epochs"]:
        raise _refuse(directory, "epochs", old["epochs"], new["epochs"],
                      " (the learning-rate or auxiliary weight schedule spans the epochs, so they cannot change)")


def _check_tasks(old: Any, new: list[dict[str, Any]], directory: str | Path) -> None:
    names = [t["name"] for t in new]
    old_names = [t if isinstance(t, str) else t.get("name") for t in old] if isinstance(old, list) else old
    if old_names != names:
        raise PolytaskError(f"cannot resume from '{directory}': it was made for tasks {old_names}, this run has {names}")
    for saved, task in zip(old, new):
        for key in (k for k in task if isinstance(saved, dict) and k in saved and saved[k] != task[k]):
            raise _refuse(directory, f"task '{task['name']}' {key}", saved[key], task[key])


def check_same_run(saved: dict[str, Any], current: dict[str, Any], directory: str | Path) -> None:
    """Refuse, in one line naming what differs, to resume a checkpoint made by another run
    (only ``epochs``, ``device`` and ``val_metrics`` may change; see :func:`_check_epochs`)."""
    current = json.loads(json.dumps(current, default=str))  # compare as saved: lists, not tuples
    old, new = saved.get("config", {}), current["config"]
    for key in new:
        if key not in RESUMABLE_CHANGES and key in old and old[key] != new[key]:
            raise _refuse(directory, key, old[key], new[key])
    depends = new.get("lr_schedule") == "cosine" or bool(current["callbacks"])
    _check_epochs(old, new, int(saved.get("epoch", -1)) + 1, depends, directory)
    _check_tasks(saved.get("tasks"), current["tasks"], directory)
    old_net, new_net = saved.get("network", {}), current["network"]
    if old_net.get("arch") != new_net["arch"]:
        raise _refuse(directory, "arch", old_net.get("arch"), new_net["arch"])
    for key in sorted(set(old_net.get("config", {})) | set(new_net["config"])):
        if old_net.get("config", {}).get(key) != new_net["config"].get(key):
            raise _refuse(directory, f"network {key}", old_net.get("config", {}).get(key), new_net["config"].get(key))
    if "shared_lr_scale" in saved and saved["shared_lr_scale"] != current["shared_lr_scale"]:
        raise _refuse(directory, "shared_lr_scale", saved["shared_lr_scale"], current["shared_lr_scale"])
    old_cbs, new_cbs = saved.get("callbacks", current["callbacks"]), current["callbacks"]
    for key in sorted(set(old_cbs) | set(new_cbs)):
        if old_cbs.get(key) != new_cbs.get(key):
            raise _refuse(directory, f"callback {key}", old_cbs.get(key), new_cbs.get(key))
    if saved.get("processes", 1) != current.get("processes", 1):
        raise PolytaskError(f"cannot resume from '{directory}': it was made by {saved.get('processes', 1)} processes, "
                            f"this run has {current.get('processes', 1)}")
    if saved.get("data") is not None and saved.get("data") != current["data"]:
        raise PolytaskError(f"cannot resume from '{directory}': it was made on other training data (another file, "
                            "split, seed, feature or target columns)")
