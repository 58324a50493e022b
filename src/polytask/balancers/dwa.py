"""``dwa``: Dynamic Weight Average (Liu, Johns and Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019).

With ``Lbar_t(e)`` the mean training loss of task ``t`` over epoch ``e``, the weights used
throughout epoch ``e`` are

    r_t = Lbar_t(e-1) / Lbar_t(e-2),        w_t = T * softmax(r / temperature)_t,

so a task whose loss fell less (ratio near or above 1) gets more weight; ``w`` sums to ``T``.
In the first two epochs, before two averages exist, ``w_t = 1``. A task whose previous average
is zero (it was never labelled) gets ratio 1.

State: the epoch being accumulated, its running loss sum and batch count, and the last two
epoch averages.
"""

from __future__ import annotations

from typing import Any

import torch

from polytask.balancers.base import LossWeighting, StepContext
from polytask.balancers.option_checks import real


class DynamicWeightAverage(LossWeighting):
    """``w = T softmax(r / temperature)`` with ``r_t = Lbar_t(e-1) / Lbar_t(e-2)`` (Liu et al.
    2019).

    Args:
        temperature: softmax temperature (> 0); larger is more uniform. The paper uses 2.
    """

    name = "dwa"

    def __init__(self, temperature: float = 2.0) -> None:
        self.temperature = real(self.name, "temperature", temperature, low=0.0, low_open=True)
        self._epoch: int | None = None
        self._sum: torch.Tensor | None = None
        self._batches = 0
        self._averages: list[torch.Tensor] = []

    def _close_epoch(self) -> None:
        if self._sum is not None and self._batches > 0:
            self._averages = [*self._averages, self._sum / self._batches][-2:]
        self._sum, self._batches = None, 0

    def ratios(self) -> torch.Tensor | None:
        """``r_t = Lbar_t(e-1) / Lbar_t(e-2)``, or None before two epochs have ended."""
        if len(self._averages) < 2:
            return None
        older, newer = self._averages
        safe = torch.where(older > 0, older, torch.ones_like(older))
        return torch.where(older > 0, newer / safe, torch.ones_like(newer))

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if ctx.epoch != self._epoch:
            self._close_epoch()
            self._epoch = ctx.epoch
        r = self.ratios()
        if r is None:
            w = torch.ones_like(losses)
        else:
            w = losses.numel() * torch.softmax(r.to(losses) / self.temperature, dim=0)
        self._sum = losses.clone() if self._sum is None else self._sum.to(losses) + losses
        self._batches += 1
        return w

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self._epoch,
            "loss_sum": None if self._sum is None else self._sum.clone(),
            "batches": self._batches,
            "averages": [a.clone() for a in self._averages],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._epoch = None if state["epoch"] is None else int(state["epoch"])
        self._sum = None if state["loss_sum"] is None else state["loss_sum"].clone()
        self._batches = int(state["batches"])
        self._averages = [a.clone() for a in state["averages"]]

    def options(self) -> dict[str, Any]:
        return {"temperature": self.temperature}
