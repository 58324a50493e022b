"""Training one arm of an experiment on fixed rows and reading its main-task test score."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from polytask.auxiliary.shuffle import ShuffleAux
from polytask.data.config import DataConfig
from polytask.data.prepare import prepare
from polytask.data.splits import Split
from polytask.setups import stl_settings
from polytask.tasks import Targets
from polytask.training.config import TrainConfig
from polytask.workflow import FitReport, NetworkSpec, train_model


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
    config = config.replace(val_metrics=False)
    prepared = prepare(frame, Targets(tuple(main), tuple(aux), kinds or {}), DataConfig(features=tuple(features)), split=split)
    report = FitReport(prepared)
    report.models["mtl"] = train_model(prepared, spec, config, setups=[ShuffleAux(shuffle_seed)] if shuffle_aux else [])
    if stl:
        report.models["stl"] = train_model(prepared, *stl_settings(stl_spec or spec, config), name="stl")
    return report


def test_score(report: FitReport, task: str, metric: str, model: str = "mtl") -> float:
    """``metric`` of ``task`` on the test rows, for the MTL (or STL) model of ``report``."""
    fitted = report.mtl if model == "mtl" else report.stl
    assert fitted is not None
    return float(fitted.summary["test_metrics"][task][metric])
