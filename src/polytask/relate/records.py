"""T x T measurements taken at training steps, and their summaries over training.

Callbacks that measure relatedness during training append one matrix per recorded step;
a summary is the NaN-ignoring mean over steps (entries that were undefined at a step, such as
a task without labels in the batch, are skipped), and a curve is that mean per epoch, one
column per ordered task pair ``"a->b"`` (or unordered ``"a~b"`` for a symmetric measure).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from polytask.balancers.base import StepContext
from polytask.errors import PolytaskError
from polytask.training.callbacks import Callback

if TYPE_CHECKING:
    from polytask.training.trainer import Trainer


@dataclass
class StepRecords:
    """Matrices recorded at training steps: ``steps[i]``, ``epochs[i]``, ``values[i]`` (T, T)."""

    task_names: list[str]
    steps: list[int] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    values: list[np.ndarray] = field(default_factory=list)

    def add(self, step: int, epoch: int, matrix: np.ndarray) -> None:
        self.steps.append(int(step))
        self.epochs.append(int(epoch))
        self.values.append(np.asarray(matrix, dtype=float))

    def __len__(self) -> int:
        return len(self.values)

    def stacked(self) -> np.ndarray:
        if not self.values:
            raise PolytaskError("no training step was recorded (is 'every' larger than the number of steps?)")
        return np.stack(self.values)

    def mean(self, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """The mean over recorded steps of ``transform(values)`` (NaN ignored; NaN where never
        defined)."""
        stack = self.stacked()
        if transform is not None:
            stack = np.where(np.isnan(stack), np.nan, transform(stack))
        counts = np.isfinite(stack).sum(axis=0)
        sums = np.nansum(stack, axis=0)
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)

    def curve(self, symmetric: bool, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> pd.DataFrame:
        """Per epoch, the mean of ``transform(values)`` for every task pair (NaN ignored)."""
        stack = self.stacked()
        if transform is not None:
            stack = np.where(np.isnan(stack), np.nan, transform(stack))
        names = self.task_names
        pairs = [(a, b) for a in range(len(names)) for b in range(len(names)) if a != b and (not symmetric or a < b)]
        sep = "~" if symmetric else "->"
        data = {f"{names[a]}{sep}{names[b]}": stack[:, a, b] for a, b in pairs}
        frame = pd.DataFrame({"epoch": self.epochs, **data})
        with np.errstate(all="ignore"):
            return frame.groupby("epoch").mean()


class StepRecorder(Callback, ABC):
    """A callback that records one T x T matrix, :meth:`measure`, every ``every`` training
    steps (before the backward pass); ``every = 0`` turns recording off."""

    #: What is recorded, for the error raised when the callback never saw training.
    what: str = "the measurement"

    def __init__(self, every: int = 1) -> None:
        if every < 0:
            raise PolytaskError(f"'every' must be >= 0 (0 turns recording off), got {every}")
        self.every = int(every)
        self.records: StepRecords | None = None

    @abstractmethod
    def measure(self, trainer: "Trainer", ctx: StepContext) -> np.ndarray:
        """The (T, T) matrix at this step."""

    def on_fit_start(self, trainer: "Trainer") -> None:
        """A fresh recording, unless this run resumes one (its records came from the checkpoint)."""
        if self.records is None or trainer.step == 0:
            self.records = StepRecords([t.name for t in trainer.tasks])

    def state_dict(self) -> dict[str, Any]:
        if self.records is None:
            return {}
        r = self.records
        values = torch.from_numpy(np.stack(r.values)) if r.values else torch.zeros(0)
        return {"task_names": list(r.task_names), "steps": list(r.steps), "epochs": list(r.epochs), "values": values}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        values = state["values"].numpy()
        self.records = StepRecords(list(state["task_names"]), [int(s) for s in state["steps"]],
                                   [int(e) for e in state["epochs"]], [values[i] for i in range(len(state["steps"]))])

    def on_before_backward(self, trainer: "Trainer", ctx: StepContext) -> None:
        if self.every == 0 or ctx.step % self.every != 0 or self.records is None:
            return
        self.records.add(ctx.step, ctx.epoch, self.measure(trainer, ctx))

    def recorded(self) -> StepRecords:
        if self.records is None:
            raise PolytaskError(f"{self.what} was not recorded: the callback never saw training")
        return self.records
