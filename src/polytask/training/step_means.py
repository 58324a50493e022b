"""The epoch's mean of a ``(T,)`` value logged at every step (the training losses, the
balancer's weights).

Adding each step's tensor into a running sum costs one operation per step, and a step of the
basic network is a few dozen. Values that nothing changes after the step (the detached
losses) are kept and added up in blocks of :data:`BLOCK` (one ``stack`` and one ``sum``, which
also bounds what is held); values that may change in place later (a balancer's weights can be
its own parameter) are added at once.
"""

from __future__ import annotations

import torch

#: Steps' tensors held before they are added into the running sum.
BLOCK = 256


class StepMeans:
    """The running mean of ``(T,)`` tensors (float32 on ``device``; other shapes, dtypes or
    devices are flattened and converted when added). ``hold``: keep the tensors until their
    block is added (they must not be changed in place after :meth:`add`)."""

    def __init__(self, size: int, device: torch.device | str | None = None, hold: bool = False) -> None:
        self.total = torch.zeros(size, device=device)
        self.count = 0
        self.hold = hold
        self._pending: list[torch.Tensor] = []

    def add(self, value: torch.Tensor) -> None:
        total = self.total
        if value.shape != total.shape or value.dtype != total.dtype or value.device != total.device:
            value = value.reshape(-1).to(total)
        self.count += 1
        if not self.hold:
            total += value
            return
        self._pending.append(value)
        if len(self._pending) >= BLOCK:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.total += torch.stack(self._pending).sum(0)
            self._pending = []

    def mean(self) -> list[float]:
        """Each entry's mean over the values added (0 when none was)."""
        self._flush()
        return (self.total / max(self.count, 1)).tolist()
