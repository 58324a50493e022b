"""Seeded synthetic multi-task problems with a known structure (for the demo and tests).

``related_tasks``: every task reads the same low-dimensional latent factors of the inputs,
``h = tanh(X U)`` with ``U`` (p x k) shared, and ``y_t = h w_t + noise`` with its own mixing
``w_t``; with few training rows a shared representation should help. ``unrelated`` draws an
independent ``U_t`` per task instead, so nothing is shared. ``clusters`` groups tasks so that
tasks within a cluster share ``U`` and tasks across clusters do not.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def related_tasks(
    n_rows: int = 2000,
    n_features: int = 20,
    n_tasks: int = 4,
    n_latent: int = 3,
    noise: float = 0.3,
    binary_tasks: int = 0,
    seed: int = 0,
    unrelated: bool = False,
) -> tuple[pd.DataFrame, list[str]]:
    """A table of features ``x0..`` and targets ``task0..``; returns it with the target names.

    The last ``binary_tasks`` tasks are thresholded at their median into 0/1 labels.
    """
    clusters = [list(range(n_tasks))] if not unrelated else [[t] for t in range(n_tasks)]
    return task_clusters(n_rows, n_features, clusters, n_latent, noise, binary_tasks, seed)


def task_clusters(
    n_rows: int,
    n_features: int,
    clusters: Sequence[Sequence[int]],
    n_latent: int = 3,
    noise: float = 0.3,
    binary_tasks: int = 0,
    seed: int = 0,
) -> tuple[pd.DataFrame, list[str]]:
    """Tasks in ``clusters`` (lists of task indices) share latent factors within a cluster only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, n_features))
    n_tasks = sum(len(c) for c in clusters)
    y = np.zeros((n_rows, n_tasks))
    for members in clusters:
        u = rng.normal(size=(n_features, n_latent)) / np.sqrt(n_features) * 2.0
        h = np.tanh(x @ u)
        for t in members:
            w = rng.normal(size=n_latent)
            w /= np.linalg.norm(w)
            signal = h @ w
            y[:, t] = signal / signal.std() + noise * rng.normal(size=n_rows)
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(n_features)])
    names = [f"task{t}" for t in range(n_tasks)]
    for t, name in enumerate(names):
        if t >= n_tasks - binary_tasks:
            frame[name] = (y[:, t] > np.median(y[:, t])).astype(int)
        else:
            frame[name] = y[:, t]
    return frame, names
