"""The experiments ``polytask experiment NAME`` can run: name -> ``run(quick, seed)``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from polytask.registry import Registry
from polytask_lab.experiments import (
    grouping, horizons, inputs_as_outputs, parity, peaks_experiment, peaks_sharing, transfer_experiment,
)
from polytask_lab.experiments.common import ExperimentResult
from polytask_lab.experiments.mechanisms import MECHANISMS, run_mechanism

Runner = Callable[..., ExperimentResult]

EXPERIMENTS: Registry[Runner] = Registry("experiment", {
    "peaks": peaks_experiment.run,
    "peaks-sharing": peaks_sharing.run,
    "inputs-as-outputs": inputs_as_outputs.run,
    "parity": parity.run,
    **{name: partial(run_mechanism, name) for name in MECHANISMS},
    "transfer": transfer_experiment.run,
    "grouping": grouping.run,
    "horizons": horizons.run,
})


def get(name: str) -> Runner:
    """The runner of experiment ``name`` (names compare as the registry does: ``Peaks`` is ``peaks``)."""
    return EXPERIMENTS[name]
