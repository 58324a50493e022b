"""Shared fixtures: small seeded multi-task tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polytask.synthetic import related_tasks


@pytest.fixture
def mixed_frame() -> pd.DataFrame:
    """300 rows: numeric and categorical features, two regressions, a binary and a multiclass
    target (all driven by the same latent factors)."""
    frame, _ = related_tasks(n_rows=300, n_features=6, n_tasks=2, noise=0.2, seed=3)
    rng = np.random.default_rng(3)
    frame["colour"] = rng.choice(["red", "green", "blue"], size=len(frame))
    frame["label"] = np.where(frame["task0"] > 0, "yes", "no")
    frame["grade"] = pd.cut(frame["task1"], [-np.inf, -0.5, 0.5, np.inf], labels=["low", "mid", "high"]).astype(str)
    return frame


@pytest.fixture
def small_frame() -> pd.DataFrame:
    frame, _ = related_tasks(n_rows=200, n_features=5, n_tasks=2, noise=0.1, seed=1)
    return frame
