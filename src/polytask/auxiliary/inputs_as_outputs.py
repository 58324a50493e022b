"""Inputs as outputs (Caruana & de Sa, "Promoting poor features to supervisors: some inputs
work better as outputs", NIPS 1996).

A feature that is noisy, costly or only known after the fact can be *predicted* from the other
inputs as an auxiliary task instead of being read as an input. The network then learns the
mapping from the other inputs to that feature, which can help the main task more than the
feature's raw (noisy) value; at prediction time the feature is not needed.

``inputs_as_outputs(frame, ["f"])`` turns column ``f`` into an auxiliary target (it stops being
a feature). With ``keep_as_inputs=True`` it stays a feature too, and a copy ``f<suffix>`` becomes
the auxiliary target (then, of course, prediction needs ``f``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from polytask.auxiliary.columns import AuxiliaryColumns
from polytask.data.targets import infer_kind
from polytask.errors import PolytaskError

DEFAULT_SUFFIX = ":as_output"


def inputs_as_outputs(
    frame: pd.DataFrame,
    columns: Sequence[str],
    keep_as_inputs: bool = False,
    suffix: str = DEFAULT_SUFFIX,
) -> AuxiliaryColumns:
    """Move ``columns`` from inputs to auxiliary outputs (see the module docstring)."""
    columns = list(columns)
    if not columns:
        raise PolytaskError("inputs_as_outputs needs at least one column to move")
    absent = [c for c in columns if c not in frame.columns]
    if absent:
        raise PolytaskError(f"input column '{absent[0]}' to use as an output is not in the data")
    out = frame.copy()
    if keep_as_inputs:
        aux = [f"{c}{suffix}" for c in columns]
        clash = [a for a in aux if a in frame.columns]
        if clash:
            raise PolytaskError(f"column '{clash[0]}' already exists; choose another suffix")
        for c, a in zip(columns, aux):
            out[a] = frame[c]
        removed: list[str] = []
    else:
        aux = columns
        removed = columns
    kinds = {a: infer_kind(out[a]) for a in aux}
    return AuxiliaryColumns(frame=out, aux=aux, kinds=kinds, removed_inputs=removed)
