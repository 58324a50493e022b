"""Shared fixtures: small seeded multi-task tables."""

from __future__ import annotations

import os

# One thread per pytest-xdist worker: with ``-n 2`` on 2 cores, torch's default (a thread per
# core in every worker) oversubscribes the CPU and made the suite about five times slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from polytask.synthetic import related_tasks  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)


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
