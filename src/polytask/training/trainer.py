"""The training loop: joint back-propagation on all task outputs.

One step: ``z = encode(x)``, ``outputs = decode(z, x)``, the masked loss vector
``(alpha_1 L_1, ..., alpha_T L_T)``, then the balancer fills the gradients, the architecture's own
penalty and the L2 term ``l2 * sum ||W||^2`` are added, gradients are clipped, and the optimizer
steps. After each epoch the network is evaluated on validation data and early stopping records
each task's best epoch. The loop knows the balancer only through its interface.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from polytask.balancers import Balancer, StepContext, get as get_balancer
from polytask.data.targets import TargetEncoder
from polytask.data.tensors import TaskTensors
from polytask.errors import NonFiniteLossError, PolytaskError
from polytask.evaluate import task_metrics
from polytask.losses import loss_vector, task_loss
from polytask.models.base import MultiTaskNetwork
from polytask.tasks import Task
from polytask.training.callbacks import Callback
from polytask.training.config import TrainConfig
from polytask.training.early_stopping import EarlyStopping

#: ``schedule(task, epoch, n_epochs) -> alpha_t`` at that epoch (default: the task's weight).
WeightSchedule = Callable[[Task, int, int], float]


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


def predict_raw(network: nn.Module, x: torch.Tensor, batch_size: int = 4096) -> dict[str, torch.Tensor]:
    """Network outputs in eval mode, in batches, without gradients."""
    was_training = network.training
    network.eval()
    chunks: dict[str, list[torch.Tensor]] = {}
    with torch.no_grad():
        for start in range(0, max(1, x.shape[0]), batch_size):
            for k, v in network(x[start : start + batch_size]).items():
                chunks.setdefault(k, []).append(v)
    network.train(was_training)
    return {k: torch.cat(v) for k, v in chunks.items()}


class Trainer:
    """Trains a :class:`MultiTaskNetwork` on tasks with a balancer, callbacks and early stopping."""

    def __init__(
        self,
        network: MultiTaskNetwork,
        tasks: Sequence[Task],
        encoders: Sequence[TargetEncoder] | None = None,
        config: TrainConfig | None = None,
        balancer: Balancer | None = None,
        callbacks: Sequence[Callback] = (),
        weight_schedule: WeightSchedule | None = None,
        shared_lr_scale: float = 1.0,
        val_metrics: bool = True,
    ) -> None:
        self.config = config or TrainConfig()
        self.shared_lr_scale = float(shared_lr_scale)
        self.val_metrics = val_metrics  # False: only validation losses each epoch (faster)
        self.device = resolve_device(self.config.device)
        self.network = network.to(self.device)
        self.tasks = list(tasks)
        self.encoders = list(encoders) if encoders is not None else None
        self.balancer = balancer or get_balancer(self.config.balancer, **self.config.balancer_options)
        self.callbacks = list(callbacks)
        self.weight_schedule = weight_schedule
        self.step = 0
        #: The batch of the step in progress (callbacks that re-evaluate losses read it).
        self.batch: TaskTensors | None = None
        self.history: list[dict[str, Any]] = []
        names = [t.name for t in self.tasks]
        missing = [n for n in names if n not in network.task_names]
        if missing:
            raise PolytaskError(f"the network has no output for task '{missing[0]}'")
        self.balancer.setup(names)
        self.balancer.to(self.device)
        params = list(self.network.parameters()) + list(self.balancer.parameters())
        self.optimizer = self._make_optimizer(self._parameter_groups(params))
        self.scheduler = self._make_scheduler()
        self.stopping = EarlyStopping(
            names, [t.name for t in self.tasks if not t.auxiliary], self.config.early_stopping, self.config.patience
        )
        self._decay = [p for n, p in self.network.named_parameters() if p.ndim > 1]

    def _parameter_groups(self, params: list[nn.Parameter]) -> Any:
        """Every parameter at ``lr``, except the shared ones at ``lr * shared_lr_scale`` (0 keeps
        them exactly as they are: transfer with a frozen trunk)."""
        if self.shared_lr_scale == 1.0:
            return params
        shared_ids = {id(p) for p in self.network.shared_parameters()}
        groups = [
            {"params": [p for p in params if id(p) not in shared_ids]},
            {"params": [p for p in params if id(p) in shared_ids], "lr": self.config.lr * self.shared_lr_scale},
        ]
        return [g for g in groups if g["params"]]

    def _make_optimizer(self, params: Any) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "sgd":
            return torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)

    def _make_scheduler(self) -> Any:
        c = self.config
        if c.lr_schedule == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=c.epochs)
        if c.lr_schedule == "step":
            return torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=c.step_size, gamma=c.gamma)
        return None

    def task_weights(self, epoch: int) -> torch.Tensor:
        """The ``alpha_t`` in force at ``epoch``."""
        if self.weight_schedule is None:
            w = [t.weight for t in self.tasks]
        else:
            w = [float(self.weight_schedule(t, epoch, self.config.epochs)) for t in self.tasks]
        return torch.tensor(w, device=self.device)

    def context(self, x: torch.Tensor, targets: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], epoch: int) -> tuple[StepContext, torch.Tensor]:
        """Forward pass of one batch: the balancer's context and the unweighted loss vector."""
        z = self.network.encode(x)
        outputs = self.network.decode(z, x)
        raw = loss_vector(self.tasks, outputs, targets, masks)
        alphas = self.task_weights(epoch)
        ctx = StepContext(
            losses=raw * alphas,
            task_names=[t.name for t in self.tasks],
            shared_params=self.network.shared_parameters(),
            task_params={t.name: self.network.task_parameters(t.name) for t in self.tasks},
            representation=z,
            last_shared_params=self.network.last_shared_parameters(),
            step=self.step,
            epoch=epoch,
            present=(torch.stack([masks[t.name].any() for t in self.tasks]) & (alphas > 0)).cpu(),  # labelled, weighted
        )
        return ctx, raw

    def _train_step(self, batch: TaskTensors, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.batch = batch
        ctx, raw = self.context(batch.x, batch.targets, batch.masks, epoch)
        values = raw.detach()
        if not torch.isfinite(values).all():
            bad = int((~torch.isfinite(values)).nonzero()[0, 0])
            raise NonFiniteLossError(self.tasks[bad].name, epoch, float(values[bad]))
        for cb in self.callbacks:
            cb.on_before_backward(self, ctx)
        self.optimizer.zero_grad(set_to_none=True)
        weights = self.balancer.backward(ctx)
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
        self.optimizer.step()
        for cb in self.callbacks:
            cb.on_step_end(self, ctx, weights)
        self.step += 1
        return values, torch.as_tensor(weights, dtype=torch.float32).detach().cpu()

    def evaluate_losses(self, data: TaskTensors) -> dict[str, float]:
        """Masked loss of each task on ``data`` (NaN for a task with no label there)."""
        outputs = predict_raw(self.network, data.x)
        out: dict[str, float] = {}
        for t in self.tasks:
            mask = data.masks[t.name]
            out[t.name] = float(task_loss(t, outputs[t.name], data.targets[t.name], mask)) if mask.any() else math.nan
        return out

    def _val_metrics(self, data: TaskTensors) -> dict[str, dict[str, float]]:
        if self.encoders is None or not self.val_metrics:
            return {}
        outputs = predict_raw(self.network, data.x)
        return {
            enc.task.name: task_metrics(
                enc,
                outputs[enc.task.name].cpu().numpy(),
                data.targets[enc.task.name].cpu().numpy(),
                data.masks[enc.task.name].cpu().numpy(),
            )
            for enc in self.encoders
        }

    def fit(self, train: TaskTensors, val: TaskTensors | None = None, resume_from: str | None = None) -> TrainResult:
        """Train; validation data drives early stopping (without it, the last epoch is kept)."""
        if len(train) == 0:
            raise PolytaskError("no training rows")
        c = self.config
        train = train.to(self.device)
        val = val.to(self.device) if val is not None and len(val) > 0 else None
        if val is None:
            self.stopping.mode = "none"
        start_epoch = 0
        if resume_from is not None:
            start_epoch = self._resume(resume_from)
        generator = torch.Generator().manual_seed(c.seed)
        for _ in range(start_epoch):  # keep the batch order of an uninterrupted run
            torch.randperm(len(train), generator=generator)
        for cb in self.callbacks:
            cb.on_fit_start(self)
        stopped = False
        epoch = start_epoch - 1
        try:
            for epoch in range(start_epoch, c.epochs):
                for cb in self.callbacks:
                    cb.on_epoch_start(self, epoch)
                self.network.train()
                order = torch.randperm(len(train), generator=generator)
                loss_sum = torch.zeros(len(self.tasks))
                weight_sum = torch.zeros(len(self.tasks))
                n_batches = 0
                for start in range(0, len(train), c.batch_size):
                    rows = order[start : start + c.batch_size]
                    if len(rows) < 2 and len(train) >= 2 and any(isinstance(m, nn.BatchNorm1d) for m in self.network.modules()):
                        continue  # batch norm cannot train on a single row
                    values, weights = self._train_step(train.subset(rows.numpy()), epoch)
                    loss_sum += values.cpu()
                    weight_sum += weights.reshape(-1)
                    n_batches += 1
                if self.scheduler is not None:
                    self.scheduler.step()
                names = [t.name for t in self.tasks]
                logs: dict[str, Any] = {
                    "epoch": epoch,
                    "train_loss": dict(zip(names, (loss_sum / max(n_batches, 1)).tolist())),
                    "weights": dict(zip(names, (weight_sum / max(n_batches, 1)).tolist())),
                }
                if val is not None:
                    val_loss = self.evaluate_losses(val)
                    for name, value in val_loss.items():
                        if not math.isfinite(value) and val.masks[name].any():
                            raise NonFiniteLossError(name, epoch, value)
                    logs["val_loss"] = val_loss
                    logs["val_metrics"] = self._val_metrics(val)
                else:
                    val_loss = {n: math.nan for n in names}
                logs["improved"] = self.stopping.update(epoch, val_loss, self.network)
                self.history.append(logs)
                for cb in self.callbacks:
                    cb.on_epoch_end(self, epoch, logs)
                if self.stopping.should_stop:
                    stopped = True
                    break
        finally:
            for cb in self.callbacks:
                cb.on_fit_end(self)
        best = {t.name: self.stopping.epoch_of(t.name) for t in self.tasks}
        applied = {n: [h["weights"][n] for h in self.history] for n in [t.name for t in self.tasks]}
        return TrainResult(
            history=self.history,
            best_epoch=best,
            snapshots=dict(self.stopping.snapshots),
            epochs_run=epoch + 1,
            stopped_early=stopped,
            applied_weights=applied,
        )

    def _resume(self, directory: str) -> int:
        from polytask.training.checkpoint import load_checkpoint

        epoch, state = load_checkpoint(directory)
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.balancer.load_state_dict(state["balancer"])
        self.step = int(state["step"])
        self.history = list(state["history"])
        self.stopping.load_state_dict(state["stopping"])
        return epoch + 1
