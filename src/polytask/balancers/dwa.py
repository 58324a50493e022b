"""``dwa``: Dynamic Weight Average (Liu, Johns and Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019).

With ``Lbar_t(e)`` the mean training loss of task ``t`` over epoch ``e``, the weights used
throughout epoch ``e`` are

    r_t = Lbar_t(e-1) / Lbar_t(e-2),        w_t = T * softmax(r / temperature)_t,

so a task whose loss fell less (ratio near or above 1) gets more weight; ``w`` sums to ``T``.
In the first two epochs, before two averages exist, ``w_t = 1``.

Absent tasks: a task's epoch average is over the batches in which it is present (an absent
task's loss of 0 is not a measurement). A task with no present batch in an epoch has no
average then, and a task whose ratio is undefined (no average, or a zero older one) gets
ratio 1.

State: the epoch being accumulated, its per-task running loss sums and present-batch counts,
and the last two epoch averages.
"""

from __future__ import annotations

import torch

from polytask.balancers.base import LossWeighting, Remembers, StepContext
from polytask.balancers.option_checks import real


class DynamicWeightAverage(Remembers, LossWeighting):
    """``w = T softmax(r / temperature)`` with ``r_t = Lbar_t(e-1) / Lbar_t(e-2)`` (Liu et al.
    2019).

    Args:
        temperature: softmax temperature (> 0); larger is more uniform. The paper uses 2.
    """

    name = "dwa"
    state_fields = ("_epoch", "_sum", "_count", "_averages")

    def __init__(self, temperature: float = 2.0) -> None:
        super().__init__()
        self.temperature = real(self.name, "temperature", temperature, low=0.0, low_open=True)
        self._epoch: int | None = None
        self._sum: torch.Tensor | None = None
        self._count: torch.Tensor | None = None
        self._averages: list[torch.Tensor] = []

    def _close_epoch(self) -> None:
        if self._sum is not None and self._count is not None and bool((self._count > 0).any()):
            mean = torch.where(self._count > 0, self._sum / self._count.clamp_min(1), torch.full_like(self._sum, float("nan")))
            self._averages = [*self._averages, mean][-2:]
        self._sum, self._count = None, None

    def ratios(self) -> torch.Tensor | None:
        """``r_t = Lbar_t(e-1) / Lbar_t(e-2)`` (1 where undefined), or None before two epochs have ended."""
        if len(self._averages) < 2:
            return None
        older, newer = self._averages
        defined = (older > 0) & ~torch.isnan(newer)  # NaN compares False: no older average
        safe = torch.where(defined, older, torch.ones_like(older))
        return torch.where(defined, newer / safe, torch.ones_like(newer))

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.epoch != self._epoch:
            self._close_epoch()
            self._epoch = ctx.epoch
        r = self.ratios()
        if r is None:
            w = torch.ones_like(losses)
        else:
            w = losses.numel() * torch.softmax(r.to(losses) / self.temperature, dim=0)
        present = ctx.presence().to(losses)
        self._sum = losses * present if self._sum is None else self._sum.to(losses) + losses * present
        self._count = present.clone() if self._count is None else self._count.to(losses) + present
        return w
