"""Named schedules for the weight of auxiliary tasks over training.

A schedule multiplies each auxiliary task's weight ``alpha_t`` by a factor ``s(e)`` at epoch
``e`` of ``E`` (``E`` = the configured maximum number of epochs); main tasks keep their weight.
With ``f`` = ``final`` (the factor reached at the end, default 0):

- ``constant``:     ``s(e) = 1``
- ``linear_decay``: ``s(e) = 1 - (1 - f) * e / (E - 1)``
- ``cosine_decay``: ``s(e) = f + (1 - f) * (1 + cos(pi * e / (E - 1))) / 2``
- ``step``:         ``s(e) = 1`` for ``e < at * E``, else ``f`` (``at`` default 0.5)

Decaying the auxiliary weight lets the extra tasks shape the shared representation early and
leaves the end of training to the main task (a common recipe, e.g. Liebel & Koerner 2018
"Auxiliary tasks in multi-task learning"; Du et al. 2018 "Adapting auxiliary losses using
gradient similarity" for adaptive variants).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from polytask.errors import PolytaskError
from polytask.registry import Registry, check_options
from polytask.setups import RunPlan, Setup
from polytask.tasks import Task
from polytask.training.callbacks import Callback

Factor = Callable[[int, int], float]


def _constant(**_: float) -> Factor:
    return lambda epoch, n_epochs: 1.0


def _progress(epoch: int, n_epochs: int) -> float:
    return min(1.0, max(0.0, epoch / max(1, n_epochs - 1)))


def _linear(final: float = 0.0) -> Factor:
    return lambda epoch, n_epochs: 1.0 - (1.0 - final) * _progress(epoch, n_epochs)


def _cosine(final: float = 0.0) -> Factor:
    return lambda epoch, n_epochs: final + (1.0 - final) * 0.5 * (1.0 + math.cos(math.pi * _progress(epoch, n_epochs)))


def _step(final: float = 0.0, at: float = 0.5) -> Factor:
    if not 0.0 <= at <= 1.0:
        raise PolytaskError(f"aux weight schedule 'step': at must be in [0, 1], got {at}")
    return lambda epoch, n_epochs: 1.0 if epoch < at * n_epochs else final


SCHEDULES: Registry[Callable[..., Factor]] = Registry("aux weight schedule", {
    "constant": _constant,
    "linear_decay": _linear,
    "cosine_decay": _cosine,
    "step": _step,
})
_OPTIONS: dict[str, tuple[str, ...]] = {
    "constant": (),
    "linear_decay": ("final",),
    "cosine_decay": ("final",),
    "step": ("final", "at"),
}


class AuxWeightSchedule(Setup, Callback):
    """``schedule(task, epoch, n_epochs) -> alpha_t``.

    As a setup of the main run it installs itself as a callback that sets the trainer's
    ``alphas`` at the start of every epoch (the STL networks keep the tasks' own weights).
    """

    def __init__(self, name: str, **options: Any) -> None:
        name = SCHEDULES.key(name)
        options = check_options("aux weight schedule", name, list(_OPTIONS[name]), options)
        try:
            values = {k: float(v) for k, v in options.items()}
        except (TypeError, ValueError):
            raise PolytaskError(f"aux weight schedule '{name}': options must be numbers, got {options}") from None
        if values.get("final", 0.0) < 0:
            raise PolytaskError(f"aux weight schedule '{name}': final must be >= 0, got {values['final']}")
        self.name = name
        self.options = values
        self._factor = SCHEDULES[name](**values)

    def factor(self, epoch: int, n_epochs: int) -> float:
        """The multiplier ``s(e)`` applied to auxiliary weights at ``epoch``."""
        return float(self._factor(epoch, n_epochs))

    def __call__(self, task: Task, epoch: int, n_epochs: int) -> float:
        if not task.auxiliary:
            return task.weight
        return task.weight * self.factor(epoch, n_epochs)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.options}

    def configure(self, plan: RunPlan) -> None:
        if plan.name == "mtl":
            plan.callbacks.append(self)
            plan.controls["aux_weight_schedule"] = self.to_dict()

    def on_epoch_start(self, trainer: Any, epoch: int) -> None:
        weights = [self(t, epoch, trainer.config.epochs) for t in trainer.tasks]
        trainer.alphas = torch.tensor(weights, device=trainer.alphas.device, dtype=trainer.alphas.dtype)


def aux_weight_schedule(name: str | None, **options: Any) -> AuxWeightSchedule | None:
    """The named schedule, or None when ``name`` is None (the tasks' own weights throughout)."""
    if name is None:
        return None
    return AuxWeightSchedule(name, **options)
