"""Gradient agreement during training: pairwise cosine of per-task gradients on shared weights.

At every ``every``-th training step the callback takes the Jacobian ``J`` (T, P) of the loss
vector with respect to the shared parameters (``polytask.gradients.per_task_gradients``) and
records ``cos(g_k, g_l) = <g_k, g_l> / (||g_k|| ||g_l||)`` for every pair of tasks (undefined,
NaN, when a task's gradient is zero, e.g. no label for it in the batch). Two tasks conflict at
a step when their cosine is negative (Yu et al. 2020, "Gradient Surgery for Multi-Task
Learning"). Summaries over training: the mean cosine and the fraction of recorded steps in
conflict, as T x T matrices and per-epoch curves.

Cost: one batched vector-Jacobian product at recorded steps only; ``every=0`` records nothing
and costs nothing, and the callback never changes training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from polytask.balancers.base import StepContext
from polytask.errors import PolytaskError
from polytask.gradients import per_task_gradients
from polytask.relate.matrix import TaskMatrix
from polytask.relate.records import StepRecorder

if TYPE_CHECKING:
    from polytask.training.trainer import Trainer


def gradient_cosines(jacobian: torch.Tensor) -> np.ndarray:
    """(T, T) cosines between the rows of ``jacobian``; NaN for a row of zeros."""
    j = jacobian.detach().double()
    norms = j.norm(dim=1)
    gram = j @ j.T
    with torch.no_grad():
        cos = gram / (norms[:, None] * norms[None, :])
    cos[(norms == 0)[:, None] | (norms == 0)[None, :]] = float("nan")
    return cos.clamp(-1.0, 1.0).cpu().numpy()


@dataclass
class AgreementResult:
    """Summaries of the recorded cosines."""

    mean_cosine: TaskMatrix
    conflict: TaskMatrix
    cosine_curve: pd.DataFrame
    conflict_curve: pd.DataFrame
    recorded_steps: int


class GradientAgreement(StepRecorder):
    """Records the pairwise cosine of per-task shared-parameter gradients every ``every`` steps."""

    what = "gradient agreement"

    def measure(self, trainer: "Trainer", ctx: StepContext) -> np.ndarray:
        return gradient_cosines(per_task_gradients(ctx.losses, ctx.shared_params))

    def result(self) -> AgreementResult:
        """Mean cosine and conflict fraction over the recorded steps."""
        r = self.recorded()
        conflict = lambda v: (v < 0).astype(float)  # noqa: E731
        mean = r.mean()
        np.fill_diagonal(mean, 1.0)
        frac = r.mean(conflict)
        np.fill_diagonal(frac, 0.0)
        return AgreementResult(
            mean_cosine=TaskMatrix("cosine_mean", r.task_names, mean,
                                   f"mean cosine of per-task shared gradients over {len(r)} steps"),
            conflict=TaskMatrix("cosine_conflict", r.task_names, frac,
                                f"fraction of {len(r)} recorded steps with cosine < 0"),
            cosine_curve=r.curve(symmetric=True),
            conflict_curve=r.curve(symmetric=True, transform=conflict),
            recorded_steps=len(r),
        )
