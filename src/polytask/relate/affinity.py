"""Look-ahead inter-task affinity (TAG: Fifty et al., "Efficiently Identifying Task Groupings
for Multi-Task Learning", NeurIPS 2021).

At a recorded step with batch ``X`` and shared parameters ``theta_s``, for every task ``i``:
take one step of the training optimizer on ``L_i`` alone, on the shared parameters only
(task heads fixed), giving ``theta_s'(i)``; then for every task ``j``

    Z_{i->j} = 1 - L_j(X; theta_s'(i), theta_j) / L_j(X; theta_s, theta_j).

Positive ``Z_{i->j}``: a step for ``i`` lowers ``j``'s loss on the same batch (``i`` helps ``j``);
negative: it hurts. The step follows the real optimizer's rule and current state (SGD momentum,
Adam moments; see :mod:`polytask.relate.lookahead`); the T steps are taken in one batched
optimizer call and the T look-ahead losses in one vectorized forward (``torch.func.vmap``, one
forward per task where an architecture's operations cannot be vectorized). The gradient is that of the task's
weighted loss ``alpha_i L_i`` as trained; the trainer's L2 term and gradient clipping are not
part of a step "on L_i alone" and are left out. Losses are evaluated without dropout (eval
mode), so the look-ahead neither draws random numbers nor updates batch-norm statistics:
training runs exactly as it would without the callback. Recorded every ``every`` steps
(``every=0``: never, at no cost); the result is the mean over recorded steps, an asymmetric
T x T matrix with rows the source ``i`` and columns the target ``j``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call

from polytask.balancers.base import StepContext
from polytask.errors import PolytaskError
from polytask.gradients import per_task_gradients
from polytask.losses import loss_vector
from polytask.relate.lookahead import lookahead_parameters_batched
from polytask.relate.matrix import TaskMatrix
from polytask.relate.records import StepRecorder

if TYPE_CHECKING:
    from polytask.training.trainer import Trainer


def lookahead_affinity(trainer: "Trainer", ctx: StepContext) -> np.ndarray:
    """The (T, T) matrix ``Z[i, j] = Z_{i->j}`` at the current step of ``trainer`` (its batch,
    parameters and optimizer state); NaN where ``L_j`` is zero on the batch."""
    batch = trainer.batch
    if batch is None:
        raise PolytaskError("the trainer has no current batch to look ahead on")
    network = trainer.network
    shared = list(ctx.shared_params)
    names = {id(p): n for n, p in network.named_parameters()}
    missing = [p for p in shared if id(p) not in names]
    if missing:
        raise PolytaskError("a shared parameter is not a parameter of the network; cannot look ahead")
    jacobian = per_task_gradients(ctx.losses, shared).detach()
    n_tasks = jacobian.shape[0]
    sizes = [p.numel() for p in shared]
    grads = [g.reshape(n_tasks, *p.shape) for g, p in zip(torch.split(jacobian, sizes, dim=1), shared)]

    def losses(replaced: dict[str, torch.Tensor]) -> torch.Tensor:
        outputs = functional_call(network, replaced, (batch.x,), strict=False)
        return loss_vector(trainer.tasks, outputs, batch.targets, batch.masks)

    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            before = losses({}).double()
            stepped = lookahead_parameters_batched(trainer.optimizer, shared, grads)
            stacked = {names[id(p)]: v for p, v in zip(shared, stepped)}
            try:  # all T look-ahead forwards at once
                after_all = torch.func.vmap(losses)(stacked).double()
            except (RuntimeError, NotImplementedError, ValueError):  # an op vmap cannot batch: one at a time
                after_all = torch.stack([losses({k: v[i] for k, v in stacked.items()}) for i in range(n_tasks)]).double()
    finally:
        network.train(was_training)
    # after_all[i, j] = L_j after a step on task i alone
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 1.0 - after_all.cpu().numpy() / before.cpu().numpy()[None, :]
    z[:, before.cpu().numpy() == 0] = np.nan
    return z


@dataclass
class AffinityResult:
    """TAG affinity averaged over training, and its per-epoch curves."""

    affinity: TaskMatrix
    curve: pd.DataFrame
    recorded_steps: int


class LookaheadAffinity(StepRecorder):
    """Records TAG's look-ahead affinity ``Z_{i->j}`` every ``every`` training steps."""

    what = "look-ahead affinity"

    def measure(self, trainer: "Trainer", ctx: StepContext) -> np.ndarray:
        return lookahead_affinity(trainer, ctx)

    def result(self) -> AffinityResult:
        r = self.recorded()
        mean = r.mean()
        return AffinityResult(
            affinity=TaskMatrix("tag", r.task_names, mean,
                                f"TAG look-ahead affinity Z[i->j] (row i onto column j), mean over {len(r)} steps",
                                symmetric=False),
            curve=r.curve(symmetric=False),
            recorded_steps=len(r),
        )
