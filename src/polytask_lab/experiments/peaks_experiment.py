"""``peaks``: one MTL net on all 120 Peaks tasks against 120 STL nets (Caruana 1997).

Protocol. Data from :func:`polytask_lab.experiments.peaks.peaks_data` (60 coarse-coded inputs,
120 targets ``P = IF X1 > 0.5 THEN X2 ELSE X3``). Each trial draws fresh rows (seed = 1000 *
seed + trial): 150 training, 150 early-stopping and 1,000 test rows. MTL: one hidden layer of
256 ReLU units shared by 120 linear outputs. STL: 120 nets of 64 ReLU hidden units and one
output each (together 30 times the MTL net's hidden units), trained on the same batches. Adam
(lr 0.003), batch 32, at most 200 epochs, per-task early stopping (patience 25). Score: test
RMSE averaged over the 120 tasks; the JSON also holds each task's RMSE averaged over trials.
3 trials (``--quick``: 1 trial of 3 epochs on 8 tasks, 60/60/200 rows).

Why these sizes: a pilot on trial 0 (kept in docs/EXPERIMENTS.md) found a shared layer of 64
tanh units too small for 120 tasks (MTL 0.222 against STL 0.188); 256 ReLU units give 0.129,
against 0.143 for 64-unit ReLU STL nets.
"""

from __future__ import annotations

import numpy as np

from polytask_lab.experiments.arms import consecutive_split, run_arm
from polytask_lab.experiments.common import ExperimentResult
from polytask_lab.experiments.peaks import input_columns, peaks_data
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec

ROWS = {"train": 150, "val": 150, "test": 1000}
MTL_HIDDEN, STL_HIDDEN, LR = 256, 64, 0.003


def run(quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    trials, epochs, n_tasks = (1, 3, 8) if quick else (3, 200, 120)
    trials = trials_override or trials
    rows = {"train": 60, "val": 60, "test": 200} if quick else ROWS
    spec = NetworkSpec(trunk=(MTL_HIDDEN,), activation="relu")
    stl_spec = NetworkSpec(trunk=(STL_HIDDEN,), activation="relu")
    result = ExperimentResult(
        name="peaks",
        metric=f"test RMSE (mean of {n_tasks} tasks)",
        lower_is_better=True,
        protocol={"trials": trials, "rows": rows, "tasks": n_tasks, "hidden": {"MTL": MTL_HIDDEN, "STL": STL_HIDDEN},
                  "activation": "relu", "epochs": epochs, "patience": 25, "lr": LR, "batch_size": 32, "seed": seed, "doc": __doc__},
        comparisons=[("MTL", "STL")],
    )
    split = consecutive_split(rows["train"], rows["val"], rows["test"])
    per_task: dict[str, list[list[float]]] = {"MTL": [], "STL": []}
    names: list[str] = []
    for trial in range(trials):
        s = seed * 1000 + trial
        frame, names = peaks_data(sum(rows.values()), seed=s)
        names = names[:n_tasks]
        config = TrainConfig(epochs=epochs, batch_size=32, lr=LR, patience=25, seed=s)
        report = run_arm(frame, split, names, input_columns(), spec, config, stl=True, stl_spec=stl_spec)
        for arm, model in (("MTL", report.mtl), ("STL", report.stl)):
            assert model is not None
            rmse = [float(model.summary["test_metrics"][t]["rmse"]) for t in names]
            per_task[arm].append(rmse)
            result.add(arm, float(np.mean(rmse)))
        result.trial_done(trial, trials, quiet=quick)
    means = {arm: np.mean(np.array(v), axis=0) for arm, v in per_task.items()}
    result.extra["per_task_rmse"] = {arm: dict(zip(names, m.tolist())) for arm, m in means.items()}
    result.extra["tasks_where_mtl_better"] = int(np.sum(means["MTL"] < means["STL"]))
    return result.finish()
