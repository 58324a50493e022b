"""The shuffle control (Caruana 1997, section 3): auxiliary targets permuted across training rows.

Permuting an auxiliary task's labels across rows keeps their distribution (and the amount of
training signal, noise and regularization they bring) but destroys what they say about each
row. If MTL's gain over STL survives the shuffle, it came from regularization or noise, not
from the information in the extra task. Each auxiliary task gets its own permutation, drawn
from one generator seeded with ``seed``; a label and its missingness move together; main
tasks are left exactly as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from polytask.data.tensors import TaskTensors
from polytask.errors import PolytaskError
from polytask.setups import RunPlan, Setup
from polytask.tasks import Task


def aux_permutations(n_rows: int, names: Sequence[str], seed: int) -> dict[str, np.ndarray]:
    """One seeded permutation of ``range(n_rows)`` per name, in order."""
    rng = np.random.default_rng(seed)
    return {name: rng.permutation(n_rows) for name in names}


def shuffle_auxiliary(data: TaskTensors, tasks: Sequence[Task], seed: int = 0) -> TaskTensors:
    """A copy of ``data`` whose auxiliary tasks' targets (and masks) are permuted across rows.

    Features and main tasks are the very same tensors as in ``data``.
    """
    aux = [t.name for t in tasks if t.auxiliary]
    if not aux:
        raise PolytaskError("the shuffle control needs at least one auxiliary task")
    absent = [n for n in aux if n not in data.targets]
    if absent:
        raise PolytaskError(f"auxiliary task '{absent[0]}' has no targets in the training data")
    perms = aux_permutations(len(data), aux, seed)
    targets = dict(data.targets)
    masks = dict(data.masks)
    for name, perm in perms.items():
        idx = torch.as_tensor(perm, dtype=torch.long)
        targets[name] = data.targets[name][idx]
        masks[name] = data.masks[name][idx]
    return TaskTensors(data.x, targets, masks)


@dataclass
class ShuffleAux(Setup):
    """The shuffle control as a setup: every run (MTL and its STL companion) trains on the
    auxiliary targets permuted across the training rows, seeded with ``seed`` (default: the
    training seed)."""

    seed: int | None = None

    def configure(self, plan: RunPlan) -> None:
        seed = plan.config.seed if self.seed is None else self.seed
        plan.train_data = shuffle_auxiliary(plan.train_data, plan.prepared.tasks, seed)
        plan.controls["shuffle_aux"] = {"seed": seed}


def shuffle_columns(
    frame: pd.DataFrame, columns: Sequence[str], seed: int = 0, rows: Sequence[int] | np.ndarray | None = None
) -> pd.DataFrame:
    """A copy of ``frame`` with each of ``columns`` permuted among ``rows`` (default: all rows).

    Pass the training rows as ``rows`` so validation and test labels stay where they were.
    """
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise PolytaskError(f"column '{absent[0]}' to shuffle is not in the data")
    out = frame.copy()
    positions = np.arange(len(frame)) if rows is None else np.asarray(rows, dtype=int)
    perms = aux_permutations(len(positions), list(columns), seed)
    for col, perm in perms.items():
        j = out.columns.get_loc(col)
        values = out.iloc[positions, j].to_numpy()
        out.iloc[positions, j] = values[perm]
    return out
