"""User-facing errors.

Every mistake a user can make (a bad column, file, value or model directory) raises
:class:`PolytaskError` with a one-line message that names the offending thing. The CLI turns
it into ``error: <message>`` on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations


class PolytaskError(ValueError):
    """A user mistake: bad input data, a bad option or a bad model directory."""


def first_line(exc: BaseException, limit: int | None = None) -> str:
    """The first line of ``exc``'s message (its type's name when the message is empty), cut to
    ``limit`` characters if given: what a one-line error quotes from a library's exception."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if limit is None else line[:limit]


class NonFiniteLossError(PolytaskError):
    """Training produced a NaN or infinite loss for a task."""

    def __init__(self, task: str, epoch: int, value: float) -> None:
        super().__init__(
            f"non-finite loss {value} for task '{task}' at epoch {epoch}; training stopped before "
            "the bad step, leaving saved models and the last epoch's checkpoint untouched "
            "(try a lower --lr or check the target's scale)"
        )
        self.task = task
        self.epoch = epoch


class DivergedLossError(NonFiniteLossError):
    """Training diverged: a task's loss grew by orders of magnitude while staying finite."""

    def __init__(self, task: str, epoch: int, value: float, start: float, lr: float) -> None:
        PolytaskError.__init__(
            self,
            f"training diverged: the loss of task '{task}' reached {value:.3g} at epoch {epoch}, "
            f"{value / start:.2g} times its first value; training stopped before the bad step, leaving "
            f"saved models untouched (try a lower learning rate than {lr:g}, e.g. --lr {lr / 10:g})",
        )
        self.task = task
        self.epoch = epoch
