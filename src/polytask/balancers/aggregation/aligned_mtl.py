"""Aligned-MTL: align the principal components of the task gradients (condition number 1).

Senushkin et al., "Independent Component Alignment for Multi-Task Learning" (CVPR 2023),
Algorithm 1. With ``G = V diag(lambda) V^T`` (eigenvalues above the rank tolerance only, so ``r`` =
the numerical rank of J at the precision the gradients were computed in; ``solvers.rank_tolerance``):

    B = sqrt(lambda_ref) V diag(lambda)^{-1/2} V^T,   w = B u,   d = J^T w,

where ``u`` = 1/T and ``lambda_ref`` is the smallest eigenvalue (``scale_mode="min"``), the median
(``"median"``) or the mean (``"rmse"``, the authors' code). ``J^T B`` has orthogonal rows of equal
norm. With ``mode="representation"`` this is the paper's Aligned-MTL-UB.
"""

from __future__ import annotations

import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.solvers import rank_tolerance
from polytask.errors import PolytaskError

SCALE_MODES = ("min", "median", "rmse")


class AlignedMTL(GramianAggregator):
    """Aligned-MTL (see the module docstring)."""

    name = "aligned_mtl"

    def __init__(self, scale_mode: str = "min", mode: str = "exact") -> None:
        super().__init__(mode)
        if scale_mode not in SCALE_MODES:
            raise PolytaskError(f"unknown aligned_mtl scale_mode '{scale_mode}' (choose from {', '.join(SCALE_MODES)})")
        self.scale_mode = scale_mode

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m = gramian.shape[0]
        u = torch.full((m,), 1.0 / m, dtype=gramian.dtype)
        lam, vec = torch.linalg.eigh(gramian)
        keep = lam > rank_tolerance(lam, problem.entry_error)
        if not keep.any():
            return u
        lam, vec = lam[keep], vec[:, keep]
        if self.scale_mode == "min":
            ref = lam.min()
        elif self.scale_mode == "median":
            ref = torch.median(lam)
        else:
            ref = lam.mean()
        balance = ref.sqrt() * (vec / lam.sqrt()) @ vec.T
        return balance @ u
