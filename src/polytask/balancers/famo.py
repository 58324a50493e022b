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

which lowers the weight of tasks whose loss fell fast and raises it for tasks that lag.

Which losses are used (the cheap variant). The paper evaluates ``L^after`` on the *same* batch
after the parameter update, which costs one extra forward pass per step. This balancer instead
uses the losses the trainer already has: at step ``k`` it updates the logits with
``L^before = L(theta_{k-1}; batch_{k-1})`` (remembered from the previous step) and
``L^after = L(theta_k; batch_k)`` (the current step's losses), then weights the current step.
So a step costs one forward and one backward pass, like equal weighting, at the price of batch
noise in ``delta``. For the paper's same-batch variant, call :meth:`FAMO.update` yourself with
losses recomputed on the same batch. A task whose loss is exactly zero in either batch (no label
in that batch) contributes no logit update for that step, and gets weight 0 in that step (the
others' weights are renormalised to sum to 1).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch

from polytask.balancers.base import LossWeighting, StepContext
from polytask.balancers.option_checks import real, reals
from polytask.errors import PolytaskError

EPS = 1e-8


class FAMO(LossWeighting):
    """FAMO (Liu et al. 2023), next-batch variant; see the module docstring for the formulas.

    Args:
        lr: learning rate of the logits' Adam (paper: 0.025).
        weight_decay: weight decay ``gamma`` on the logits (paper: 1e-3).
        min_losses: lower bounds ``b_t`` of the task losses (default 0).
    """

    name = "famo"

    def __init__(self, lr: float = 0.025, weight_decay: float = 1e-3, min_losses: Sequence[float] | None = None) -> None:
        self.lr = real(self.name, "lr", lr, low=0.0, low_open=True)
        self.weight_decay = real(self.name, "weight_decay", weight_decay, low=0.0)
        self.min_losses = None if min_losses is None else reals(self.name, "min_losses", min_losses)
        self.logits: torch.Tensor | None = None
        self.optimizer: torch.optim.Adam | None = None
        self.previous: torch.Tensor | None = None

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        if self.min_losses is not None and len(self.min_losses) != len(task_names):
            raise PolytaskError(
                f"balancer 'famo': option 'min_losses' has {len(self.min_losses)} values for {len(task_names)} tasks"
            )
        self.logits = torch.zeros(len(task_names), requires_grad=True)
        self.optimizer = torch.optim.Adam([self.logits], lr=self.lr, weight_decay=self.weight_decay)
        self.previous = None

    def _place(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.optim.Adam]:
        """Keep the logits (and Adam's state) on the device and dtype of the losses."""
        assert self.logits is not None and self.optimizer is not None, "setup() was not called"
        if self.logits.device != like.device or self.logits.dtype != like.dtype:
            saved = self.optimizer.state_dict()
            self.logits = self.logits.detach().to(like).requires_grad_(True)
            self.optimizer = torch.optim.Adam([self.logits], lr=self.lr, weight_decay=self.weight_decay)
            self.optimizer.load_state_dict(saved)  # casts Adam's moments to the logits' device and dtype
        return self.logits, self.optimizer

    def _bounds(self, like: torch.Tensor) -> torch.Tensor:
        if self.min_losses is None:
            return torch.zeros_like(like)
        return torch.tensor(self.min_losses, dtype=like.dtype, device=like.device)

    def task_weights(self, like: torch.Tensor) -> torch.Tensor:
        """``z = softmax(xi)`` (the simplex weights, before the ``c / L_t`` scaling)."""
        logits, _ = self._place(like)
        return torch.softmax(logits.detach(), dim=0)

    def update(self, before: torch.Tensor, after: torch.Tensor) -> None:
        """One Adam step on the logits from the log-loss decrease ``before -> after``."""
        logits, optimizer = self._place(before)
        b = self._bounds(before)
        after = after.detach().to(before)
        delta = torch.log((before - b).clamp_min(0) + EPS) - torch.log((after - b).clamp_min(0) + EPS)
        delta = torch.where((before == 0) | (after == 0), torch.zeros_like(delta), delta)
        z = torch.softmax(logits.detach(), dim=0)
        # gradient of z(xi) . delta with respect to xi: the softmax Jacobian (diag(z) - z z^T) delta
        logits.grad = z * (delta - (z * delta).sum())
        optimizer.step()
        logits.grad = None

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        if self.previous is not None:
            self.update(self.previous.to(losses), losses)
        self.previous = losses.clone()
        z = self.task_weights(losses)
        shifted = (losses - self._bounds(losses)).clamp_min(0) + EPS
        # a task with no label in the batch has loss exactly 0: weight 0, and it stays out of c
        # (else c ~ EPS would scale every present task's weight down to nothing)
        ratio = torch.where(losses == 0, torch.zeros_like(shifted), z / shifted)
        total = ratio.sum()
        return ratio / total if total > 0 else ratio

    def state_dict(self) -> dict[str, Any]:
        assert self.logits is not None and self.optimizer is not None, "setup() was not called"
        return {
            "logits": self.logits.detach().clone(),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "previous_losses": None if self.previous is None else self.previous.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        assert self.logits is not None, "setup() was not called"
        # the saved dtype (that of the losses it trained with), so a float64 run resumes exactly
        self.logits = state["logits"].detach().clone().to(self.logits.device).requires_grad_(True)
        self.optimizer = torch.optim.Adam([self.logits], lr=self.lr, weight_decay=self.weight_decay)
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        prev = state.get("previous_losses")
        self.previous = None if prev is None else prev.clone()

    def options(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight_decay": self.weight_decay, "min_losses": self.min_losses}
