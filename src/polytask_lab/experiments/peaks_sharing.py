"""``peaks-sharing``: do related Peaks tasks share more hidden units? (Caruana 1997, section
3.3 and Figure 5.)

Protocol. Peaks data (:mod:`polytask_lab.experiments.peaks`: 60 coarse-coded inputs, 120 tasks
``P = IF X1 > 0.5 THEN X2 ELSE X3``). Per trial (seed = 1000 * seed + trial): 3,000 fresh rows
(2,100 training, 450 validation, 450 unused), one hard-sharing network as in the paper (one
hidden layer of 64 tanh units, 120 linear outputs), Adam (lr 3e-3), batch 64, 60 epochs (per-task
early stopping, patience 60: the best epoch of each task). Then the paper's sensitivity analysis:
the sensitivity of each output to each hidden unit (the mean absolute gradient over the training
rows, :func:`polytask.relate.hidden_unit_sharing`) and, for every pair of tasks, the Spearman
rank correlation of their sensitivity vectors (the paper's "non-parametric rank correlation").

The two curves of the paper's Figure 5, per trial: the mean sharing over pairs of tasks by the
number of variables they have in common (0 to 3), over all such pairs ("any feature": 360,
3,240, 3,240 and 300 pairs) and over those whose conditional variable X1 is the same ("test must
match": 360, 720 and 60 pairs for 1, 2 and 3 common variables; none with 0). Scores are the
per-trial means; intervals are 95 % t intervals over trials. Paired tests over trials: each
step up in common variables on the "any feature" line, and "test must match" against "any
feature" at 1, 2 and 3 common variables (two Holm families). 5 trials (``--quick``: 1 trial of
3 epochs, 300 rows, the first 24 tasks).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np

from polytask.relate.sharing import hidden_unit_sharing
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, prepare, train_model
from polytask_lab.experiments.common import ExperimentResult
from polytask_lab.experiments.peaks import input_columns, peaks_data, peaks_variables

#: The paper's Figure 5, read from its description (no numbers are printed): sharing rises with
#: the number of common variables on both lines, is slightly negative at 0, and the "test must
#: match" line lies above the "any feature" line.
PAPER = {"figure": "Caruana 1997, Machine Learning 28, Figure 5", "net": "64 hidden units, 120 outputs",
         "claims": ["sharing grows with the number of common variables (both lines)",
                    "a small negative correlation for tasks with no common variable",
                    "'test must match' above 'any feature'"]}


def line_name(line: str, k: int) -> str:
    return f"{line}, {k} common"


def curves(matrix: np.ndarray, names: list[str]) -> dict[str, float]:
    """Mean sharing by number of common variables, over all pairs and over pairs with the same
    conditional variable (NaN entries skipped)."""
    sums: dict[str, list[float]] = {}
    for a, b in combinations(range(len(names)), 2):
        va, vb = peaks_variables(names[a]), peaks_variables(names[b])
        k = len(set(va) & set(vb))
        value = matrix[a, b]
        if not np.isfinite(value):
            continue
        sums.setdefault(line_name("any feature", k), []).append(float(value))
        if k > 0 and va[0] == vb[0]:
            sums.setdefault(line_name("test must match", k), []).append(float(value))
    return {key: float(np.mean(v)) for key, v in sums.items()}


def run(quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    trials = trials_override or (1 if quick else 5)
    rows, epochs, n_tasks = (300, 3, 24) if quick else (3000, 60, 120)
    result = ExperimentResult(
        name="peaks-sharing", metric="hidden-unit sharing (Spearman correlation of sensitivities)",
        lower_is_better=False,
        protocol={"trials": trials, "rows": rows, "tasks": n_tasks, "hidden": 64, "activation": "tanh",
                  "epochs": epochs, "lr": 3e-3, "batch_size": 64, "seed": seed, "doc": __doc__},
        comparisons=[(line_name("any feature", k + 1), line_name("any feature", k), "each step up") for k in range(3)]
        + [(line_name("test must match", k), line_name("any feature", k), "must match vs any") for k in (1, 2, 3)],
        extra={"paper": PAPER},
    )
    for trial in range(trials):
        s = seed * 1000 + trial
        frame, names = peaks_data(rows, seed=s)
        names = names[:n_tasks]
        frame = frame[input_columns() + names]
        prepared = prepare(frame, names, seed=s)
        config = TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, patience=epochs, seed=s, val_metrics=False)
        model = train_model(prepared, NetworkSpec(trunk=(64,), activation="tanh"), config)
        matrix, _ = hidden_unit_sharing(model, prepared.train.x, "gradient", names)
        for key, value in curves(matrix.values, names).items():
            result.add(key, value)
        result.trial_done(trial, trials, quiet=quick)
    return result.finish()
