"""The Peaks functions (Caruana, "Multitask Learning", Machine Learning 28, 1997; PhD thesis
CMU-CS-97-203): 120 related regression tasks over six variables.

Variables ``A..F`` are drawn independently and uniformly on [0, 1]. Task ``P`` is

    P = IF (X1 > 0.5) THEN X2 ELSE X3

for every ordered triple ``(X1, X2, X3)`` of distinct variables; the 6 * 5 * 4 = 120 triples
are numbered in lexicographic order of the permutations (``itertools.permutations("ABCDEF",
3)``): task index 0 (column ``P001``) is (A, B, C), index 1 (``P002``) is (A, B, D), ...,
index 119 (``P120``) is (F, E, D). Tasks are related when they share variables.

Input encoding (ours; Caruana's exact 10-input code could not be confirmed from the sources
we could search, so we chose and document one). Each variable ``v`` in [0, 1] becomes 10
inputs ``v0..v9``, a coarse code of Gaussian bumps centred on the cell midpoints
``c_k = (k + 0.5) / 10`` with width ``sigma = 0.1``:

    v_k = exp(-(v - c_k)^2 / (2 sigma^2)),   k = 0..9.

The code is smooth and invertible on [0, 1], but neither the value itself nor the test
``v > 0.5`` is a single input: a net has to learn to read the threshold and the value from
the pattern, which is what the hidden layer shared by related tasks can learn once for all.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError

VARIABLES: tuple[str, ...] = ("A", "B", "C", "D", "E", "F")
INPUTS_PER_VARIABLE = 10
ENCODING_WIDTH = 0.1
TRIPLES: tuple[tuple[str, str, str], ...] = tuple(permutations(VARIABLES, 3))  # type: ignore[assignment]
N_TASKS = len(TRIPLES)  # 120


def peaks_task_name(task_index: int) -> str:
    """Column name of the task with 0-based ``task_index`` (``0 -> "P001"``)."""
    _check_index(task_index)
    return f"P{task_index + 1:03d}"


def peaks_task_names() -> list[str]:
    """The 120 task column names in lexicographic order of the permutations."""
    return [peaks_task_name(i) for i in range(N_TASKS)]


def peaks_variables(task: int | str) -> tuple[str, str, str]:
    """The variables ``(X1, X2, X3)`` of a task, given its 0-based index or its name ``P001``..

    ``X1`` is the one tested against 0.5, ``X2`` is returned when the test holds, ``X3`` when not.
    """
    if isinstance(task, str):
        names = peaks_task_names()
        if task not in names:
            raise PolytaskError(f"unknown peaks task {task!r}: expected P001 .. P{N_TASKS:03d}")
        task = names.index(task)
    _check_index(task)
    return TRIPLES[task]


def input_columns() -> list[str]:
    """The 60 encoded input column names ``A0..A9, B0..B9, ..., F0..F9``."""
    return [f"{v}{k}" for v in VARIABLES for k in range(INPUTS_PER_VARIABLE)]


def encode_variable(values: np.ndarray) -> np.ndarray:
    """The 10-input Gaussian coarse code of values in [0, 1] (see the module docstring)."""
    centres = (np.arange(INPUTS_PER_VARIABLE) + 0.5) / INPUTS_PER_VARIABLE
    diff = np.asarray(values, dtype=float)[:, None] - centres[None, :]
    return np.exp(-(diff**2) / (2.0 * ENCODING_WIDTH**2))


def peaks_values(raw: pd.DataFrame | dict[str, np.ndarray]) -> np.ndarray:
    """The (n, 120) task values computed from raw variable values ``A..F``."""
    out = np.empty((len(np.asarray(raw["A"])), N_TASKS))
    for t, (x1, x2, x3) in enumerate(TRIPLES):
        out[:, t] = np.where(np.asarray(raw[x1]) > 0.5, np.asarray(raw[x2]), np.asarray(raw[x3]))
    return out


def peaks_raw(n_rows: int, seed: int) -> pd.DataFrame:
    """The raw variables ``A..F``, uniform on [0, 1], seeded."""
    if n_rows < 1:
        raise PolytaskError(f"n_rows must be at least 1, got {n_rows}")
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.uniform(0.0, 1.0, size=(n_rows, len(VARIABLES))), columns=list(VARIABLES))


def peaks_data(n_rows: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """A table of the 60 encoded inputs and the 120 task targets, and the target names.

    Columns: ``A0..F9`` (inputs, see the module docstring), then ``P001..P120`` (targets in
    [0, 1]). The same ``(n_rows, seed)`` always gives the same table.
    """
    raw = peaks_raw(n_rows, seed)
    blocks = [encode_variable(raw[v].to_numpy()) for v in VARIABLES]
    frame = pd.DataFrame(np.hstack(blocks), columns=input_columns())
    names = peaks_task_names()
    targets = pd.DataFrame(peaks_values(raw), columns=names)
    return pd.concat([frame, targets], axis=1), names


def _check_index(task_index: int) -> None:
    if not 0 <= int(task_index) < N_TASKS:
        raise PolytaskError(f"peaks task index {task_index} out of range 0 .. {N_TASKS - 1}")
