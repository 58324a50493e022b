"""PCGrad: project away the conflicting components of each task gradient.

Yu et al., "Gradient Surgery for Multi-Task Learning" (NeurIPS 2020), Algorithm 1. For each task
i, start from ``g_i^PC = g_i`` and visit the other tasks j in a random order: if
``g_i^PC . g_j < 0``, set ``g_i^PC <- g_i^PC - (g_i^PC . g_j / ||g_j||^2) g_j``. The update is
``d = sum_i g_i^PC``.

Each ``g_i^PC`` is a combination ``sum_k c_ik g_k`` of the original gradients, so the whole method
runs on the Gramian (``g_i^PC . g_j = c_i G_j``) and ``w = sum_i c_i``. The random orders come from
a generator seeded with ``seed`` (one permutation of all T tasks per i), saved in checkpoints.
Absent tasks take no part: the orders are permutations of the present tasks.
"""

from __future__ import annotations

import numpy as np
import torch

from polytask.balancers.aggregation.base import GramianAggregator, Problem
from polytask.balancers.aggregation.seeded import SeededStream
from polytask.balancers.base import Remembers


class PCGrad(Remembers, GramianAggregator):
    """Projecting conflicting gradients (see the module docstring)."""

    name = "pcgrad"
    state_fields = ("_stream",)

    def __init__(self, seed: int = 0, mode: str = "exact") -> None:
        super().__init__(mode)
        self.seed = int(seed)
        self._stream = SeededStream(self.seed)

    def weights_of(self, gramian: torch.Tensor, problem: Problem) -> torch.Tensor:
        m = gramian.shape[0]
        g = gramian.cpu().numpy()
        total = np.zeros(m)
        for i in range(m):
            c = np.zeros(m)
            c[i] = 1.0
            for j in self._stream.permutation(m):
                if j == i:
                    continue
                dot = float(g[j] @ c)
                if dot < 0.0:
                    c[j] -= dot / g[j, j]
            total += c
        return torch.as_tensor(total, dtype=gramian.dtype)
