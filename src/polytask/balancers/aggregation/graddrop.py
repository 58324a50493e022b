"""GradDrop: keep, coordinate by coordinate, only the gradients of one sign.

Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign Dropout"
(NeurIPS 2020), Algorithm 1, lines 10-15. Per coordinate, the positive-sign purity
``P = (1 + sum_t g_t / sum_t |g_t|) / 2``; draw ``U ~ Uniform(0, 1)``; task t keeps its coordinate
when ``(P > U and g_t > 0)`` or ``(P < U and g_t < 0)``:

    d = sum_t (leak_t + (1 - leak_t) M_t) * g_t    (element-wise; leak = 0 by default).

Acts on coordinates, so it needs the full Jacobian; it has no per-task scalar weight, so the
logged weights are 1. ``U`` comes from a generator seeded with ``seed``. Computed with column
sums (``sum_t g_t``, ``sum_t |g_t|``, ``sum_t max(g_t, 0)``) rather than per-task masks. A
coordinate where every gradient is 0 has purity 1/2 by convention (``0/0`` taken as 0): it
stays 0. Absent tasks take no part (their rows are left out; the draws are unchanged).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from polytask.balancers.aggregation.base import JacobianAggregator, Problem
from polytask.balancers.aggregation.seeded import SeededStream
from polytask.balancers.base import Remembers
from polytask.errors import PolytaskError


class GradDrop(Remembers, JacobianAggregator):
    """Gradient sign dropout (see the module docstring)."""

    name = "graddrop"
    state_fields = ("_stream",)

    def __init__(self, leak: Sequence[float] | None = None, seed: int = 0, mode: str = "exact") -> None:
        super().__init__(mode)
        if leak is not None and any(not 0.0 <= float(v) <= 1.0 for v in leak):
            raise PolytaskError("graddrop leak values must lie in [0, 1]")
        self.leak = [float(v) for v in leak] if leak is not None else None
        self.seed = int(seed)
        self._stream = SeededStream(self.seed)

    def direction(self, jacobian: torch.Tensor, problem: Problem) -> tuple[torch.Tensor, torch.Tensor]:
        m, n = jacobian.shape
        if self.leak is not None and len(self.leak) != problem.present.shape[0]:
            raise PolytaskError(f"graddrop has {len(self.leak)} leak values for {problem.present.shape[0]} tasks")
        if m == 0 or n == 0:
            return jacobian.new_zeros(m), jacobian.new_zeros(n)
        total = jacobian.sum(dim=0)
        mass = jacobian.abs().sum(dim=0)
        purity = 0.5 * (1.0 + total / torch.where(mass > 0, mass, torch.ones_like(mass)))
        u = self._stream.uniform((n,), jacobian.dtype).to(jacobian.device)
        pos, neg = (purity > u).to(jacobian.dtype), (purity < u).to(jacobian.dtype)
        # per coordinate, the kept part is the (1 - leak)-weighted sum of the positive entries where
        # the positive sign was drawn, of the negative entries where the negative sign was drawn
        if self.leak is None:
            positive = jacobian.clamp(min=0.0).sum(dim=0)
            negative = total - positive
            direction = pos * positive + neg * negative
        else:
            leak = torch.tensor(self.leak, dtype=jacobian.dtype, device=jacobian.device)[problem.present.to(jacobian.device)]
            positive = (1.0 - leak) @ jacobian.clamp(min=0.0)
            negative = (1.0 - leak) @ jacobian - positive
            direction = leak @ jacobian + pos * positive + neg * negative
        return jacobian.new_ones(m), direction
