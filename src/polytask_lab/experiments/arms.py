"""Training one arm of an experiment on fixed rows and reading its main-task test score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from polytask.data.splits import Split
from polytask.training.config import TrainConfig
from polytask.auxiliary.shuffle import shuffle_auxiliary
from polytask.workflow import FitReport, NetworkSpec, prepare, train_model


def consecutive_split(n_train: int, n_val: int, n_test: int) -> Split:
    """Rows ``[0, n_train)`` train, the next ``n_val`` validation (early stopping), the rest test."""
    idx = np.arange(n_train + n_val + n_test)
    return Split(idx[:n_train], idx[n_train : n_train + n_val], idx[n_train + n_val :])


def run_arm(
    frame: pd.DataFrame,
    split: Split,
    main: Sequence[str],
    features: Sequence[str],
    spec: NetworkSpec,
    config: TrainConfig,
    aux: Sequence[str] = (),
    kinds: dict[str, str] | None = None,
    shuffle_aux: bool = False,
    shuffle_seed: int = 0,
    stl: bool = False,
    stl_spec: NetworkSpec | None = None,
) -> FitReport:
    """Train MTL on ``main`` (+ ``aux``) with ``features``; with ``stl=True`` also the STL nets
    (shaped by ``stl_spec``, default ``spec``).

    The same path as :func:`polytask.workflow.fit` (prepare, the shuffle control, train_model),
    without the per-epoch validation metrics that experiments do not use.
    """
    prepared = prepare(frame, list(main), aux=list(aux), kinds=kinds, features=list(features), split=split, seed=config.seed)
    train_data = shuffle_auxiliary(prepared.train, prepared.tasks, shuffle_seed) if shuffle_aux else None
    mtl = train_model(prepared, spec, config, train_data=train_data, val_metrics=False)
    baseline = train_model(prepared, stl_spec or spec, config, stl=True, val_metrics=False) if stl else None
    return FitReport(prepared, mtl, baseline)


def test_score(report: FitReport, task: str, metric: str, model: str = "mtl") -> float:
    """``metric`` of ``task`` on the test rows, for the MTL (or STL) model of ``report``."""
    fitted = report.mtl if model == "mtl" else report.stl
    assert fitted is not None
    return float(fitted.summary["test_metrics"][task][metric])
