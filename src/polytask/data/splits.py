"""Seeded train / validation / test splits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from polytask.errors import PolytaskError


@dataclass(frozen=True)
class Split:
    """Row indices of the three splits."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def to_dict(self) -> dict[str, list[int]]:
        return {"train": self.train.tolist(), "val": self.val.tolist(), "test": self.test.tolist()}


def split_indices(
    n_rows: int,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
    shuffle: bool = True,
) -> Split:
    """Split ``range(n_rows)`` into train/val/test.

    ``shuffle=False`` keeps time order (train first, then validation, then test), which is what
    forecasting needs to avoid leakage.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise PolytaskError(
            f"split fractions must be in [0, 1) and sum below 1, got val={val_fraction}, test={test_fraction}"
        )
    idx = np.random.default_rng(seed).permutation(n_rows) if shuffle else np.arange(n_rows)
    n_test = int(round(test_fraction * n_rows))
    n_val = int(round(val_fraction * n_rows))
    n_train = n_rows - n_val - n_test
    if n_train < 2:
        raise PolytaskError(f"only {n_rows} rows: too few to split into train/validation/test")
    if shuffle:
        return Split(np.sort(idx[:n_train]), np.sort(idx[n_train : n_train + n_val]), np.sort(idx[n_train + n_val :]))
    return Split(idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :])
