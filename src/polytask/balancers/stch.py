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
``grad L_t``: ``1 / (L_t + eps)`` in warm-up, ``T softmax((f - z*) / mu)_t / (L_t + eps)`` after;
the network's gradient is one pass of ``sum_t w_t L_t`` with them (:meth:`SmoothTchebycheff.value`
gives the objective's value).

Absent tasks (``StepContext.present``): left out of the step (``T`` counts the present tasks,
an absent task gets weight 0) and of the warm-up averages, which are per task over the batches
in which it is present. A task with no warm-up average takes its first present loss as its
reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from polytask.balancers.base import LossWeighting, Remembers, StepContext
from polytask.balancers.option_checks import integer, real, reals
from polytask.errors import PolytaskError

EPS = 1e-8


class SmoothTchebycheff(Remembers, LossWeighting):
    """``T mu log sum_t exp(log((L_t + eps) / Lbar_t) / mu)`` after a log-loss warm-up (Lin et al.
    2024).

    Args:
        mu: smoothing (> 0); the paper's MTL default is 1.
        warmup_epochs: epochs of ``sum_t log L_t`` before STCH (>= 1); the last one sets ``Lbar``.
        reference: optional ``Lbar`` (one positive loss value per task) used instead of the
            warm-up average.
    """

    name = "stch"
    state_fields = ("reference", "_sum", "_count")

    def __init__(self, mu: float = 1.0, warmup_epochs: int = 4, reference: Sequence[float] | None = None) -> None:
        super().__init__()
        self.mu = real(self.name, "mu", mu, low=0.0, low_open=True)
        self.warmup_epochs = integer(self.name, "warmup_epochs", warmup_epochs, low=1)
        self.given_reference = None if reference is None else reals(self.name, "reference", reference, low=0.0)
        if self.given_reference is not None and any(v <= 0 for v in self.given_reference):
            raise PolytaskError(f"balancer 'stch': option 'reference' must hold positive losses, got {reference!r}")
        self.reference: torch.Tensor | None = None  # (T,), NaN where not known yet
        self._sum: torch.Tensor | None = None
        self._count: torch.Tensor | None = None

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        if self.given_reference is not None:
            if len(self.given_reference) != len(task_names):
                raise PolytaskError(
                    f"balancer 'stch': option 'reference' has {len(self.given_reference)} values for {len(task_names)} tasks"
                )
            self.reference = torch.tensor(self.given_reference)

    def options(self) -> dict[str, Any]:
        return {"mu": self.mu, "warmup_epochs": self.warmup_epochs, "reference": self.given_reference}

    def _in_warmup(self, ctx: StepContext) -> bool:
        return ctx.epoch < self.warmup_epochs

    def _reference(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        if self.reference is None:  # warm-up over (resumed or not): the mean loss of the last warm-up epoch
            if self._sum is None or self._count is None:
                self.reference = torch.full_like(losses, float("nan"))
            else:
                mean = self._sum / self._count.clamp_min(1) + EPS
                self.reference = torch.where(self._count > 0, mean, torch.full_like(mean, float("nan")))
        ref = self.reference.to(losses)
        unknown = torch.isnan(ref) & present
        if bool(unknown.any()):  # no warm-up loss for these tasks: their first present loss
            ref = torch.where(unknown, losses.detach() + EPS, ref)
            self.reference = ref.clone()
        return ref

    def _exponents(self, losses: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        e = (torch.log(losses + EPS) - torch.log(self._reference(losses, present))) / self.mu
        return torch.where(present, e, torch.full_like(e, -float("inf")))

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        present = ctx.presence().to(losses.device)
        zero = torch.zeros_like(losses)
        if self._in_warmup(ctx):
            if ctx.epoch == self.warmup_epochs - 1 and self.given_reference is None:
                mask = present.to(losses.dtype)
                self._sum = losses * mask if self._sum is None else self._sum.to(losses) + losses * mask
                self._count = mask.clone() if self._count is None else self._count.to(losses) + mask
            return torch.where(present, 1.0 / (losses + EPS), zero)
        if not bool(present.any()):
            return zero
        soft = torch.softmax(self._exponents(losses, present), dim=0)
        return torch.where(present, int(present.sum()) * soft / (losses + EPS), zero)

    def value(self, ctx: StepContext) -> torch.Tensor:
        """The objective's value (for inspection): the step differentiates ``sum_t w_t L_t`` with the
        weights above, which are its derivatives ``dL_STCH/dL_t``, in one pass."""
        losses = ctx.losses
        present = ctx.presence().to(losses.device)
        if self._in_warmup(ctx) or not bool(present.any()):
            return torch.where(present, torch.log(losses + EPS), torch.zeros_like(losses)).sum()
        return int(present.sum()) * self.mu * torch.logsumexp(self._exponents(losses, present), dim=0)
