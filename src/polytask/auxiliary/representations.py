"""Several representations of one target, trained as auxiliary tasks (Caruana 1997, section
"Multiple metrics / representations": the same quantity presented in different forms makes
the network attend to different aspects of it).

From a numeric target ``y`` this derives, as new auxiliary columns:

- ``<y>:bin``: the class of ``y`` among ``n_bins`` quantile bins (multiclass, labels ``b0..``);
  bin edges are the quantiles ``k / n_bins`` of ``y`` on the fitting rows;
- ``<y>:quantile``: the empirical CDF ``F(y) = #{fitting values <= y} / n`` (regression in
  [0, 1], a rank objective: it only depends on the order of the values);
- ``<y>:log``: ``sign(y) * log(1 + |y|)`` (regression; compresses a heavy tail).

Bin edges and the CDF are computed on ``rows`` only (pass the training rows so that validation
and test labels do not shape them). Missing ``y`` stays missing in every representation. Only
the main task ``y`` is predicted.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from polytask.auxiliary.columns import AuxiliaryColumns
from polytask.errors import PolytaskError

REPRESENTATIONS = ("bins", "quantile", "log")


def target_representations(
    frame: pd.DataFrame,
    target: str,
    representations: Sequence[str] = REPRESENTATIONS,
    n_bins: int = 4,
    rows: Sequence[int] | np.ndarray | None = None,
) -> AuxiliaryColumns:
    """Add the chosen representations of ``target`` as auxiliary columns."""
    if target not in frame.columns:
        raise PolytaskError(f"target column '{target}' is not in the data")
    unknown = [r for r in representations if r not in REPRESENTATIONS]
    if unknown:
        raise PolytaskError(f"unknown target representation '{unknown[0]}' (choose from {', '.join(REPRESENTATIONS)})")
    if not pd.api.types.is_numeric_dtype(frame[target]):
        raise PolytaskError(f"target column '{target}' must be numeric to derive representations from it")
    if n_bins < 2:
        raise PolytaskError(f"n_bins must be at least 2, got {n_bins}")
    y = frame[target].to_numpy(dtype=float)
    fit_rows = np.arange(len(frame)) if rows is None else np.asarray(rows, dtype=int)
    ref = y[fit_rows]
    ref = np.sort(ref[np.isfinite(ref)])
    if len(ref) == 0:
        raise PolytaskError(f"target column '{target}' has no value in the fitting rows")
    missing = ~np.isfinite(y)
    out = frame.copy()
    aux: list[str] = []
    kinds: dict[str, str] = {}
    if "bins" in representations:
        edges = np.quantile(ref, np.arange(1, n_bins) / n_bins)
        codes = np.searchsorted(edges, y, side="right")
        labels = np.array([f"b{c}" for c in codes], dtype=object)
        labels[missing] = None
        name = f"{target}:bin"
        out[name] = labels
        aux.append(name)
        kinds[name] = "multiclass"
    if "quantile" in representations:
        cdf = np.searchsorted(ref, y, side="right") / len(ref)
        name = f"{target}:quantile"
        out[name] = np.where(missing, np.nan, cdf)
        aux.append(name)
        kinds[name] = "regression"
    if "log" in representations:
        name = f"{target}:log"
        with np.errstate(invalid="ignore"):
            out[name] = np.sign(y) * np.log1p(np.abs(y))
        aux.append(name)
        kinds[name] = "regression"
    return AuxiliaryColumns(frame=out, aux=aux, kinds=kinds)
