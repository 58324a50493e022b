"""A seeded random stream for the methods that draw (task orders, dropout masks), saved in checkpoints."""

from __future__ import annotations

from typing import Any

import torch


class SeededStream:
    """A CPU ``torch.Generator`` seeded once; its state round-trips through ``state_dict``."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(int(seed))

    def permutation(self, n: int) -> list[int]:
        return torch.randperm(n, generator=self.generator).tolist()

    def uniform(self, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator, dtype=dtype)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "rng" in state:
            self.generator.set_state(torch.as_tensor(state["rng"], dtype=torch.uint8))
