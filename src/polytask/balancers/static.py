"""Fixed weights.

- ``ew``: equal weighting, ``L = sum_t L_t`` (with each task's own ``alpha_t`` already applied by
  the trainer, this is Caruana's joint loss ``sum_t alpha_t L_t``).
- ``static``: user weights ``w``, ``L = sum_t w_t L_t``.

No history: an absent task's loss is 0 with a zero gradient, so it has no effect.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from polytask.balancers.base import LossWeighting, StepContext
from polytask.errors import PolytaskError


class EqualWeighting(LossWeighting):
    """``w_t = 1`` for every task."""

    name = "ew"

    def __init__(self) -> None:
        super().__init__()
        self._ones: torch.Tensor | None = None

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        """The ones, made once for the losses' shape, dtype and device (read-only)."""
        ones = self._ones
        if ones is None or ones.shape != losses.shape or ones.dtype != losses.dtype or ones.device != losses.device:
            ones = self._ones = torch.ones_like(losses)
        return ones

    def objective(self, ctx: StepContext, w: torch.Tensor) -> torch.Tensor:
        """``sum_t L_t`` (the weights are all 1; the sum without the product has the same value
        and gradient)."""
        return ctx.losses.sum()


class StaticWeighting(LossWeighting):
    """User weights, given in task order or by task name (missing names weigh 1)."""

    name = "static"

    def __init__(self, weights: Sequence[float] | Mapping[str, float] | None = None) -> None:
        super().__init__()
        self._given = weights
        self._w: torch.Tensor | None = None

    def setup(self, task_names: list[str]) -> None:
        super().setup(task_names)
        given = self._given
        if given is None:
            w = [1.0] * len(task_names)
        elif isinstance(given, Mapping):
            unknown = [k for k in given if k not in task_names]
            if unknown:
                raise PolytaskError(f"static weights name unknown task '{unknown[0]}'")
            w = [float(given.get(t, 1.0)) for t in task_names]
        else:
            w = [float(v) for v in given]
            if len(w) != len(task_names):
                raise PolytaskError(f"static weights: {len(w)} weights for {len(task_names)} tasks")
        if any(v < 0 for v in w):
            raise PolytaskError("static weights must be >= 0")
        self._w = torch.tensor(w)

    def weights(self, losses: torch.Tensor, ctx: StepContext) -> torch.Tensor:
        assert self._w is not None, "setup() was not called"
        return self._w.to(losses)

    def options(self) -> dict[str, Any]:
        g = self._given
        return {"weights": dict(g) if isinstance(g, Mapping) else (list(g) if g is not None else None)}
