"""Lightning-style callbacks: progress, logging and checkpoints hang off the training loop.

A callback overrides any of the hooks; the trainer calls them in order. ``logs`` passed to
``on_epoch_end`` holds ``epoch``, ``train_loss`` and ``val_loss`` (per task), ``val_metrics``
(per task), ``weights`` (mean balancer weight per task) and ``improved`` (tasks that improved).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from polytask.balancers.base import StepContext
from polytask.training.checkpoint import save_checkpoint
from polytask.training.progress import (
    PLAIN_INTERVAL_S, Ticker, format_seconds, live_bar, plain_print, stderr_console,
)

if TYPE_CHECKING:
    from polytask.training.trainer import Trainer


class Callback:
    """Base class: every hook does nothing.

    A callback with state (counters, recordings) returns it from :meth:`state_dict` (tensors
    and JSON-able values) and restores it in :meth:`load_state_dict`; the trainer saves it in
    its checkpoints under :attr:`state_key`, so a resumed run continues the recording.
    A callback that writes files or prints sets :attr:`main_process_only`: in data-parallel
    training only the first process runs it.
    """

    #: Run on the first process only when several train together (writers, progress bars).
    main_process_only: ClassVar[bool] = False

    @property
    def state_key(self) -> str:
        """The name the callback's state is saved under (numbered when it repeats)."""
        return type(self).__name__

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def on_fit_start(self, trainer: "Trainer") -> None: ...

    def on_epoch_start(self, trainer: "Trainer", epoch: int) -> None: ...

    def on_before_backward(self, trainer: "Trainer", ctx: StepContext) -> None:
        """Called with the step's loss vector still attached to its graph (per-task gradients
        may be taken here with ``retain_graph=True``)."""

    def on_step_end(self, trainer: "Trainer", ctx: StepContext, weights: Any) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: "Trainer") -> None: ...


class ProgressCallback(Callback):
    """Progress over epochs on stderr, with each main task's validation metric and an ETA.

    On a terminal: a live bar (``transient``: erased at the end). Elsewhere (a log file, a
    pipe, CI): plain lines, at the first and last epoch and at most every ``interval_s``
    seconds (:mod:`polytask.training.progress`). ``live`` forces one or the other; ``console``
    is where it goes (default: a console on stderr).
    """

    main_process_only = True

    def __init__(self, description: str = "training", transient: bool = True, console: Any = None,
                 live: bool | None = None, interval_s: float = PLAIN_INTERVAL_S) -> None:
        self.description = description
        self.transient = transient
        self.console = console
        self.live = live
        self.interval_s = interval_s
        self._progress: Any = None
        self._task_id: Any = None
        self._ticker: Ticker | None = None

    def on_fit_start(self, trainer: "Trainer") -> None:
        console = self.console if self.console is not None else stderr_console()
        self.console = console
        live = console.is_terminal if self.live is None else self.live
        total, start = trainer.config.epochs, trainer.epoch
        self._ticker = Ticker(total, start, self.interval_s)
        if live:
            self._progress = live_bar(console, self.transient)
            self._progress.start()
            self._task_id = self._progress.add_task(self.description, total=total, completed=start, status="")

    def _status(self, trainer: "Trainer", logs: dict[str, Any]) -> str:
        parts = []
        for task in trainer.tasks:
            metrics = logs.get("val_metrics", {}).get(task.name, {})
            if not task.auxiliary and metrics:
                name = task.metric_names[0]
                parts.append(f"{task.name} {name}={metrics.get(name, float('nan')):.4g}")
        return "  ".join(parts[:4])

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        status = self._status(trainer, logs)
        if self._progress is not None:
            self._progress.update(self._task_id, advance=1, status=status)
        elif self._ticker is not None and epoch + 1 < trainer.config.epochs and self._ticker.due(epoch + 1):
            plain_print(self.console, self._ticker.line(self.description, epoch + 1, "epoch", status, upper_bound=True))

    def on_fit_end(self, trainer: "Trainer") -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        elif self._ticker is not None:
            how = ("stopped early (no improvement)" if trainer.finished else
                   "reached the epoch cap" if trainer.epoch >= trainer.config.epochs else "interrupted")
            elapsed = format_seconds(self._ticker.elapsed())
            plain_print(self.console, f"{self.description}: {how} after {trainer.epoch} epochs, {elapsed}")


class JsonLinesLogger(Callback):
    """Appends one JSON line per epoch (the ``logs`` dict) to ``path``."""

    main_process_only = True

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def on_fit_start(self, trainer: "Trainer") -> None:
        """Start the file with the epochs already run (none, or those of a resumed run)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("".join(json.dumps(logs, default=float) + "\n" for logs in trainer.history))

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        with self.path.open("a") as fh:
            fh.write(json.dumps(logs, default=float) + "\n")


class CheckpointCallback(Callback):
    """Writes a resumable checkpoint (:meth:`Trainer.state_dict` as one file) every ``every``
    epochs and after the last one.

    The file is replaced atomically, so the previous checkpoint survives a crash mid-write.
    """

    main_process_only = True

    def __init__(self, directory: str | Path, every: int = 1) -> None:
        self.directory = Path(directory)
        self.every = max(1, int(every))

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: dict[str, Any]) -> None:
        if (epoch + 1) % self.every == 0 or trainer.finished or trainer.epoch >= trainer.config.epochs:
            save_checkpoint(trainer.state_dict(), self.directory, trainer.checkpoint_header())
