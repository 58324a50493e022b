"""IMTL-G: the update whose projection onto every unit task gradient is equal.

Liu et al., "Towards Impartial Multi-task Learning" (ICLR 2021); the form that also accepts
linearly dependent gradients is from Quinton and Rey (2024):

    v = G^+ sqrt(diag G),   w = v / sum(v)   (w = 0 when sum(v) = 0),   d = J^T w,

so that ``g_t^T d / ||g_t||`` is the same for every task.
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import GramianAggregator


class IMTLG(GramianAggregator):
    """Impartial MTL, gradient part (see the module docstring)."""

    drops_absent_tasks = True

    name = "imtl_g"

    def __init__(self, mode: str = "exact") -> None:
        super().__init__(mode)

    def weights_of(self, gramian: torch.Tensor) -> torch.Tensor:
        norms = torch.sqrt(torch.diagonal(gramian).clamp(min=0.0))
        v = torch.linalg.pinv(gramian) @ norms
        total = v.sum()
        return torch.zeros_like(v) if total.abs() < 1e-12 else v / total
