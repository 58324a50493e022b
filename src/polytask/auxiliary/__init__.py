"""Auxiliary tasks (Caruana 1997): where extra training signals come from and how they are
weighted and controlled. Each module has one job:

- ``schedules``: named schedules for the auxiliary weight over training;
- ``shuffle``: the shuffle control (auxiliary targets permuted across training rows);
- ``inputs_as_outputs``: move input columns to auxiliary outputs;
- ``representations``: extra representations of one target (bins, quantile, log);
- ``teacher``: a fitted model's outputs as auxiliary targets.
"""

from polytask.auxiliary.columns import AuxiliaryColumns
from polytask.auxiliary.inputs_as_outputs import inputs_as_outputs
from polytask.auxiliary.representations import target_representations
from polytask.auxiliary.schedules import SCHEDULES, AuxWeightSchedule, aux_weight_schedule
from polytask.auxiliary.shuffle import ShuffleAux, shuffle_auxiliary, shuffle_columns
from polytask.auxiliary.teacher import teacher_labels

__all__ = [
    "SCHEDULES",
    "AuxWeightSchedule",
    "AuxiliaryColumns",
    "ShuffleAux",
    "aux_weight_schedule",
    "inputs_as_outputs",
    "shuffle_auxiliary",
    "shuffle_columns",
    "target_representations",
    "teacher_labels",
]
