"""One affinity from several relatedness measures, each on a common scale.

The measures live on very different scales: a mean gradient cosine is in [-1, 1] and often
around +-0.3, a Spearman sharing correlation around +-0.5, a TAG look-ahead affinity around
1e-3. To combine them, each matrix ``M`` is symmetrized, ``S = (M + M^T) / 2``, and divided by
the root mean square of its off-diagonal entries,

    N = S / sqrt(mean_{k != l} S[k, l]^2),

so every measure contributes entries of typical size 1 while keeping its sign and its zero
("no relation" stays 0, which the grouping objective relies on: a task alone scores 0). The
combination is the mean of the normalized matrices, entry by entry, ignoring an entry that is
undefined (NaN) in one of them. A measure whose off-diagonal entries are all zero or undefined
carries no information and is left out.

Why a combination is the default of ``polytask group``: on generated problems with clusters of
tasks (``polytask experiment grouping``, docs/RELATEDNESS.md), each single measure fails on some
shapes, seeds or noise levels where another still sees the clusters. On the 48 validation
problems, the mean of the normalized gradient cosine and hidden-unit sharing recovered the
clusters exactly in 43, about as often as adding TAG as well (44) and more often than any single
measure (cosine 41, TAG 26, sharing 26), without the cost of TAG's look-ahead steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polytask.errors import PolytaskError
from polytask.relate.matrix import TaskMatrix


def normalized(matrix: TaskMatrix) -> np.ndarray | None:
    """``matrix`` symmetrized and divided by the RMS of its off-diagonal entries (diagonal 0);
    None when no off-diagonal entry is defined and non-zero."""
    v = np.asarray(matrix.values, dtype=float)
    s = (v + v.T) / 2.0
    off = s[~np.eye(len(s), dtype=bool)]
    off = off[np.isfinite(off)]
    if off.size == 0 or not np.any(off != 0):
        return None
    out = s / float(np.sqrt(np.mean(off**2)))
    np.fill_diagonal(out, 0.0)
    return out


def combine(matrices: Sequence[TaskMatrix], name: str = "combined") -> TaskMatrix:
    """The mean of the normalized ``matrices`` (see the module docstring), over the same tasks."""
    if not matrices:
        raise PolytaskError("no relatedness matrix to combine")
    names = list(matrices[0].task_names)
    if any(list(m.task_names) != names for m in matrices):
        raise PolytaskError("the matrices to combine must be over the same tasks in the same order")
    parts = [(m.name, n) for m in matrices if (n := normalized(m)) is not None]
    if not parts:
        raise PolytaskError("every relatedness matrix is zero or undefined: nothing to group on")
    stack = np.stack([n for _, n in parts])
    counts = np.isfinite(stack).sum(axis=0)
    values = np.where(counts > 0, np.nansum(stack, axis=0) / np.maximum(counts, 1), np.nan)
    used = ", ".join(n for n, _ in parts)
    return TaskMatrix(name, names, values, description=f"mean of {used}, each symmetrized and scaled to unit "
                                                       "off-diagonal RMS")
