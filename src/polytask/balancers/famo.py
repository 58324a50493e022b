"""``famo``: Fast Adaptive Multitask Optimization (Liu, Liang, Stone and Liu, "FAMO: Fast
Adaptive Multitask Optimization", NeurIPS 2023).

FAMO keeps task logits ``xi`` (its own state, not network parameters) with weights
``z = softmax(xi)`` and moves the network along

    d = c * sum_t z_t grad L_t / (L_t - b_t + eps),      c = ( sum_t z_t / (L_t - b_t + eps) )^-1,

the gradient of ``c * sum_t z_t log(L_t - b_t + eps)`` with ``c`` held constant, so every loss
is pushed down at a similar *relative* rate. The applied weights are
``w_t = c z_t / (L_t - b_t + eps)`` (they sum to 1). ``b_t`` is a lower bound of the loss
(``min_losses``, 0 by default); a loss below its bound is treated as equal to it.

The logits learn from the decrease of each log-loss across a step,

    delta_t = log(L_t^before - b_t + eps) - log(L_t^after - b_t + eps),
    xi <- Adam step on  grad_xi (z(xi) . delta) + weight_decay * xi,

(Adam as ``torch.optim.Adam`` does it, betas (0.9, 0.999), eps 1e-8, written out on the logits'
tensors: :class:`_LogitAdam`, a few in-place operations instead of an optimizer object whose
step costs more than the rest of FAMO's arithmetic together.)

which lowers the weight of tasks whose loss fell fast and raises it for tasks that lag.

Which losses are used (the cheap variant). The paper evaluates ``L^after`` on the *same* batch
after the parameter update, which costs one extra forward pass per step. This balancer instead
uses the losses the trainer already has: at step ``k`` it updates the logits with
``L^before = L(theta_{k-1}; batch_{k-1})`` (remembered from the previous step) and
``L^after = L(theta_k; batch_k)`` (the current step's losses), then weights the current step.
So a step costs one forward and one backward pass, like equal weighting, at the price of batch
noise in ``delta``. For the paper's same-batch variant, call :meth:`FAMO.update` yourself with
losses recomputed on the same batch.

Absent tasks (``StepContext.present``): a task absent from either of the two batches contributes
no logit update for that step (its ``delta`` is 0), and a task absent from the current batch gets
weight 0 in that step, the present tasks' weights renormalised to sum to 1 (an absent task's loss
of 0 in ``c`` would otherwise scale every present weight down to nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from polytask.balancers.base import LossWeighting, StepContext
from polytask.balancers.option_checks import real, reals
from polytask.errors import PolytaskError

EPS = 1e-8


class _LogitAdam:
    """Adam (Kingma and Ba 2015) with L2 weight decay on one tensor, as ``torch.optim.Adam``
    computes it (same operations, so the same values):

        g <- g + decay * x;   m <- m + (1 - b1)(g - m);   v <- b2 v + (1 - b2) g^2;   k <- k + 1
        x <- x - (lr / (1 - b1^k)) m / (sqrt(v) / sqrt(1 - b2^k) + eps)
    """

    BETAS, EPS = (0.9, 0.999), 1e-8

    def __init__(self, like: torch.Tensor, lr: float, weight_decay: float) -> None:
        self.lr, self.weight_decay = lr, weight_decay
        self.exp_avg, self.exp_avg_sq, self.step_count = torch.zeros_like(like), torch.zeros_like(like), 0

    def step(self, x: torch.Tensor, grad: torch.Tensor) -> None:
        """One update of ``x`` in place from ``grad``."""
        b1, b2 = self.BETAS
        if self.weight_decay != 0:
            grad = grad.add(x, alpha=self.weight_decay)
        self.exp_avg.lerp_(grad, 1 - b1)
        self.exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        self.step_count += 1
        correction1, correction2 = 1 - b1**self.step_count, 1 - b2**self.step_count
        denom = (self.exp_avg_sq.sqrt() / correction2**0.5).add_(self.EPS)
        x.addcdiv_(self.exp_avg, denom, value=-self.lr / correction1)

    def state(self) -> dict[str, Any]:
        return {"exp_avg": self.exp_avg.clone(), "exp_avg_sq": self.exp_avg_sq.clone(), "step": self.step_count}

    def load(self, state: dict[str, Any]) -> None:
        """From :meth:`state`, or from a ``torch.optim.Adam`` state dict (models saved before
        FAMO wrote its Adam out)."""
        if "state" in state:  # torch.optim.Adam's layout: {"state": {0: {...}}, "param_groups": [...]}
            state = next(iter(state["state"].values()), {"step": 0})
        if "exp_avg" in state:
            self.exp_avg = torch.as_tensor(state["exp_avg"]).to(self.exp_avg).clone()
            self.exp_avg_sq = torch.as_tensor(state["exp_avg_sq"]).to(self.exp_avg).clone()
        self.step_count = int(torch.as_tensor(state["step"]).item())

    def to(self, like: torch.Tensor) -> None:
        self.exp_avg, self.exp_avg_sq = self.exp_avg.to(like), self.exp_avg_sq.to(like)


class FAMO(LossWeighting):
    """FAMO (Liu et al. 2023), next-batch variant; see the module docstring for the formulas.

    Args:
        lr: learning rate of the logits' Adam (paper: 0.025).
        weight_decay: weight decay ``gamma`` on the logits (paper: 1e-3).
        min_losses: lower bounds ``b_t`` of the task losses (default 0).
    """

    name = "famo"

    def __init__(self, lr: float = 0.025, weight_decay: float = 1e-3, min_losses: Sequence[float] | None = None) -> None:
        super().__init__()
        self.lr = real(self.name, "lr", lr, low=0.0, low_open=True)
        self.weight_decay = real(self.name, "weight_decay", weight_decay, low=0.0)
        self.min_losses = None if min_losses is None else reals(self.name, "min_losses", min_losses)
        self.logits: torch.Tensor | None = None
        self.adam: _LogitAdam | None = None
        self.previous: torch.Tensor | None = None
        self.previous_present: torch.Tensor | None = None

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        if self.min_losses is not None and len(self.min_losses) != len(task_names):
            raise PolytaskError(
                f"balancer 'famo': option 'min_losses' has {len(self.min_losses)} values for {len(task_names)} tasks"
            )
        self.logits = torch.zeros(len(task_names))
        self.adam = _LogitAdam(self.logits, self.lr, self.weight_decay)
        self.previous, self.previous_present = None, None

    def _place(self, like: torch.Tensor) -> tuple[torch.Tensor, _LogitAdam]:
        """Keep the logits (and Adam's state) on the device and dtype of the losses."""
        assert self.logits is not None and self.adam is not None, "setup() was not called"
        if self.logits.device != like.device or self.logits.dtype != like.dtype:
            self.logits = self.logits.to(like)
            self.adam.to(like)
        return self.logits, self.adam

    def _bounds(self, like: torch.Tensor) -> torch.Tensor:
        if self.min_losses is None:
            return torch.zeros_like(like)
        return torch.tensor(self.min_losses, dtype=like.dtype, device=like.device)

    def task_weights(self, like: torch.Tensor) -> torch.Tensor:
        """``z = softmax(xi)`` (the simplex weights, before the ``c / L_t`` scaling)."""
        logits, _ = self._place(like)
        return torch.softmax(logits, dim=0)

    def update(self, before: torch.Tensor, after: torch.Tensor, measured: torch.Tensor | None = None) -> None:
        """One Adam step on the logits from the log-loss decrease ``before -> after``;
        ``measured`` (bool) marks the tasks present in both (None: all)."""
        logits, adam = self._place(before)
        b = self._bounds(before)
        after = after.detach().to(before)
        delta = torch.log((before - b).clamp_min(0) + EPS) - torch.log((after - b).clamp_min(0) + EPS)
        if measured is not None:
            delta = torch.where(measured.to(delta.device), delta, torch.zeros_like(delta))
        z = torch.softmax(logits, dim=0)
        # gradient of z(xi) . delta with respect to xi: the softmax Jacobian (diag(z) - z z^T) delta
        adam.step(logits, z * (delta - (z * delta).sum()))

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        present = ctx.presence()
        if self.previous is not None:
            before = self.previous_present if self.previous_present is not None else torch.ones_like(present)
            self.update(self.previous.to(losses), losses, before & present)
        self.previous, self.previous_present = losses.clone(), present.clone()
        z = self.task_weights(losses)
        shifted = (losses - self._bounds(losses)).clamp_min(0) + EPS
        ratio = torch.where(present.to(losses.device), z / shifted, torch.zeros_like(shifted))
        total = ratio.sum()
        return ratio / total if total > 0 else ratio

    def get_extra_state(self) -> dict[str, Any]:
        assert self.logits is not None and self.adam is not None, "setup() was not called"
        return {
            "logits": self.logits.clone(),
            "adam": self.adam.state(),
            "previous_losses": None if self.previous is None else self.previous.clone(),
            "previous_present": None if self.previous_present is None else self.previous_present.clone(),
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        # the saved dtype (that of the losses it trained with), so a float64 run resumes exactly
        self.logits = torch.as_tensor(state["logits"]).detach().clone()
        self.adam = _LogitAdam(self.logits, self.lr, self.weight_decay)
        self.adam.load(state["adam"] if "adam" in state else state["optimizer"])  # "optimizer": saved before 2026-12-03
        prev, seen = state.get("previous_losses"), state.get("previous_present")
        self.previous = None if prev is None else prev.clone()
        self.previous_present = None if seen is None else torch.as_tensor(seen).to(torch.bool).clone()
