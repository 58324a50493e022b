"""The experiments ``polytask experiment NAME`` can run: name -> ``run(quick, seed)``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from polytask.errors import PolytaskError
from polytask_lab.experiments import inputs_as_outputs, parity, peaks_experiment, transfer_experiment
from polytask_lab.experiments.common import ExperimentResult
from polytask_lab.experiments.mechanisms import MECHANISMS, run_mechanism

Runner = Callable[..., ExperimentResult]

EXPERIMENTS: dict[str, Runner] = {
    "peaks": peaks_experiment.run,
    "inputs-as-outputs": inputs_as_outputs.run,
    "parity": parity.run,
    **{name: partial(run_mechanism, name) for name in MECHANISMS},
    "transfer": transfer_experiment.run,
}


def get(name: str) -> Runner:
    if name not in EXPERIMENTS:
        raise PolytaskError(f"unknown experiment '{name}' (choose from {', '.join(EXPERIMENTS)})")
    return EXPERIMENTS[name]
