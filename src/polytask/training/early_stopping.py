"""Early stopping on validation loss, jointly or per task, with best-epoch snapshots.

Per task (Caruana 1997): each task t remembers the epoch with its lowest validation loss and a
snapshot of the whole network at that epoch; task t is later predicted with its own snapshot.
Jointly: one best epoch for the sum of main-task validation losses. Snapshots are shared: one
copy per epoch at which any task improved, dropped once no task points to it.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


def snapshot(network: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of ``network.state_dict()``: the same entries, each copied once and detached (read
    with ``keep_vars`` so that entries a module already copies, as the packed heads' per-task
    slices, are not copied twice; cloned without gradient tracking, so no detach is needed)."""
    with torch.no_grad():
        return {k: v.clone() for k, v in network.state_dict(keep_vars=True).items()}


class EarlyStopping:
    """Tracks best epochs and snapshots; ``should_stop`` after ``patience`` epochs without gain."""

    def __init__(self, task_names: list[str], main_tasks: list[str], mode: str, patience: int) -> None:
        self.task_names = list(task_names)
        self.main_tasks = list(main_tasks)
        self.mode = mode
        self.patience = patience
        keys = ["__joint__"] if mode == "joint" else self.task_names
        self.keys = keys
        self.best_loss: dict[str, float] = {k: math.inf for k in keys}
        self.best_epoch: dict[str, int] = {k: -1 for k in keys}
        self.snapshots: dict[int, dict[str, torch.Tensor]] = {}
        self.since_improvement = 0

    def update(self, epoch: int, val_loss: dict[str, float], network: nn.Module) -> list[str]:
        """Record epoch ``epoch``; returns the task names that improved."""
        if self.mode == "joint":
            values = {"__joint__": sum(val_loss[t] for t in self.main_tasks)}
        else:
            values = {t: val_loss[t] for t in self.task_names}
        improved = [k for k, v in values.items() if math.isfinite(v) and v < self.best_loss[k] - 1e-12]
        if self.mode == "none" or not any(math.isfinite(v) for v in values.values()):
            improved = list(self.keys)  # nothing to monitor: keep the latest epoch
        for k in improved:
            self.best_loss[k] = values[k] if math.isfinite(values[k]) else math.inf
            self.best_epoch[k] = epoch
        if improved:
            self.snapshots[epoch] = snapshot(network)
            live = set(self.best_epoch.values())
            self.snapshots = {e: s for e, s in self.snapshots.items() if e in live}
        monitored = [k for k in improved if k == "__joint__" or k in self.main_tasks]
        self.since_improvement = 0 if monitored or self.mode == "none" else self.since_improvement + 1
        return [t for t in self.task_names if t in improved or "__joint__" in improved]

    @property
    def should_stop(self) -> bool:
        return self.mode != "none" and self.since_improvement >= self.patience

    def epoch_of(self, task: str) -> int:
        return self.best_epoch["__joint__" if self.mode == "joint" else task]

    def state_dict(self) -> dict[str, Any]:
        return {
            "best_loss": dict(self.best_loss),
            "best_epoch": dict(self.best_epoch),
            "since_improvement": self.since_improvement,
            "snapshots": {str(e): s for e, s in self.snapshots.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_loss = {k: float(v) for k, v in state["best_loss"].items()}
        self.best_epoch = {k: int(v) for k, v in state["best_epoch"].items()}
        self.since_improvement = int(state["since_improvement"])
        self.snapshots = {int(e): dict(s) for e, s in state["snapshots"].items()}

    def copy_snapshot(self, epoch: int) -> dict[str, torch.Tensor]:
        return copy.copy(self.snapshots[epoch])
