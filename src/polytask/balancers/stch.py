"""``stch``: smooth Tchebycheff scalarization (Lin, Zhang, Yang, Zhang and Zhang, "Smooth
Tchebycheff Scalarization for Multi-Objective Optimization", ICML 2024), in the form the paper
uses for multi-task learning.

The smooth Tchebycheff function of objectives ``f`` with ideal point ``z*`` and smoothing
``mu > 0`` is

    g_mu(f) = mu * log sum_t exp( (f_t - z*_t) / mu ),

a smooth upper bound of ``max_t (f_t - z*_t)`` that tightens as ``mu -> 0``. For multi-task
learning the objectives are log-losses, ``f_t = log(L_t + eps)``, and the reference point is
``z*_t = log Lbar_t`` where ``Lbar_t`` is the mean training loss over the last warm-up epoch; the
joint objective, scaled by ``T`` like the paper's implementation, is

    L_STCH = T * mu * log sum_t exp( log((L_t + eps) / Lbar_t) / mu ).

Warm-up: during the first ``warmup_epochs`` epochs the objective is ``sum_t log(L_t + eps)``
and the losses of the last of those epochs are averaged into ``Lbar``. (The paper's code counts
differently: its ``warmup_epoch = k`` is ``warmup_epochs = k + 1`` here.) A reference given with
``reference=[...]`` replaces the averaged one. The applied weights are the coefficients of
``grad L_t``: ``1 / (L_t + eps)`` in warm-up, ``T softmax((f - z*) / mu)_t / (L_t + eps)`` after.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from polytask.balancers.base import LossWeighting, StepContext
from polytask.balancers.option_checks import integer, real, reals
from polytask.errors import PolytaskError

EPS = 1e-8


class SmoothTchebycheff(LossWeighting):
    """``T mu log sum_t exp(log((L_t + eps) / Lbar_t) / mu)`` after a log-loss warm-up (Lin et al.
    2024).

    Args:
        mu: smoothing (> 0); the paper's MTL default is 1.
        warmup_epochs: epochs of ``sum_t log L_t`` before STCH (>= 1); the last one sets ``Lbar``.
        reference: optional ``Lbar`` (one positive loss value per task) used instead of the
            warm-up average.
    """

    name = "stch"

    def __init__(self, mu: float = 1.0, warmup_epochs: int = 4, reference: Sequence[float] | None = None) -> None:
        self.mu = real(self.name, "mu", mu, low=0.0, low_open=True)
        self.warmup_epochs = integer(self.name, "warmup_epochs", warmup_epochs, low=1)
        self.given_reference = None if reference is None else reals(self.name, "reference", reference, low=0.0)
        if self.given_reference is not None and any(v <= 0 for v in self.given_reference):
            raise PolytaskError(f"balancer 'stch': option 'reference' must hold positive losses, got {reference!r}")
        self.reference: torch.Tensor | None = None
        self._sum: torch.Tensor | None = None
        self._batches = 0

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        if self.given_reference is not None:
            if len(self.given_reference) != len(task_names):
                raise PolytaskError(
                    f"balancer 'stch': option 'reference' has {len(self.given_reference)} values for {len(task_names)} tasks"
                )
            self.reference = torch.tensor(self.given_reference)

    def _in_warmup(self, ctx: StepContext) -> bool:
        return ctx.epoch < self.warmup_epochs

    def _reference(self, like: torch.Tensor) -> torch.Tensor:
        if self.reference is None:
            # warm-up over (resumed or not): the mean loss of the last warm-up epoch
            if self._sum is None or self._batches == 0:
                self.reference = like.detach().clone() + EPS  # no warm-up losses seen: this batch's
            else:
                self.reference = self._sum / self._batches + EPS
        return self.reference.to(like)

    def _exponents(self, losses: torch.Tensor) -> torch.Tensor:
        return (torch.log(losses + EPS) - torch.log(self._reference(losses))) / self.mu

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self._in_warmup(ctx):
            if ctx.epoch == self.warmup_epochs - 1 and self.given_reference is None:
                self._sum = losses.clone() if self._sum is None else self._sum.to(losses) + losses
                self._batches += 1
            return 1.0 / (losses + EPS)
        return losses.numel() * torch.softmax(self._exponents(losses), dim=0) / (losses + EPS)

    def objective(self, ctx: StepContext, w: torch.Tensor) -> torch.Tensor:
        losses = ctx.losses
        if self._in_warmup(ctx):
            return torch.log(losses + EPS).sum()
        return losses.numel() * self.mu * torch.logsumexp(self._exponents(losses), dim=0)

    def state_dict(self) -> dict[str, Any]:
        return {
            "reference": None if self.reference is None else self.reference.clone(),
            "loss_sum": None if self._sum is None else self._sum.clone(),
            "batches": self._batches,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.reference = None if state["reference"] is None else state["reference"].clone()
        self._sum = None if state["loss_sum"] is None else state["loss_sum"].clone()
        self._batches = int(state["batches"])

    def options(self) -> dict[str, Any]:
        return {"mu": self.mu, "warmup_epochs": self.warmup_epochs, "reference": self.given_reference}
