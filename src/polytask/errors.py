"""User-facing errors.

Every mistake a user can make (a bad column, file, value or model directory) raises
:class:`PolytaskError` with a one-line message that names the offending thing. The CLI turns
it into ``error: <message>`` on stderr and exit code 2, with no traceback.
"""

from __future__ import annotations


class PolytaskError(ValueError):
    """A user mistake: bad input data, a bad option or a bad model directory."""


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
