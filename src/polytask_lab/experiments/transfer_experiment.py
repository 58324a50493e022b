"""``transfer``: reusing a trained trunk for new tasks with little data, against training from
scratch on the same small data.

Protocol. Peaks data (see :mod:`polytask_lab.experiments.peaks`). The 120 tasks are split into 10
*new* tasks (every 12th: P001, P013, ..., P109) and 110 *source* tasks. Per trial (seed = 1000 *
seed + trial): a source MTL net (one hidden layer of 64 tanh units) is trained on the 110
source tasks with 500 training and 200 early-stopping rows; then the 10 new tasks get only 40
training and 100 early-stopping rows (fresh rows) and are trained three ways, same batches:

- ``scratch``: a new net of the same shape;
- ``frozen trunk``: the source trunk, frozen, with new heads (``--init-from DIR --freeze-trunk``);
- ``fine-tune x0.1``: the source trunk fine-tuned at 0.1 times the learning rate
  (``--init-from DIR --trunk-lr-scale 0.1``).

Adam (lr 0.005), batch 32, at most 150 epochs, per-task early stopping (patience 20). Score:
test RMSE on 1,000 fresh rows, averaged over the 10 new tasks. 3 trials (``--quick``: 1 trial
of 3 epochs, 100 source rows, 200 test rows).
"""

from __future__ import annotations

import numpy as np

from polytask_lab.experiments.arms import consecutive_split
from polytask_lab.experiments.common import ExperimentResult
from polytask_lab.experiments.peaks import input_columns, peaks_data
from polytask.training.config import TrainConfig
from polytask.transfer import TransferStart
from polytask.data.config import DataConfig
from polytask.data.prepare import prepare
from polytask.workflow import NetworkSpec, train_model

SOURCE_ROWS = {"train": 500, "val": 200, "test": 0}
TARGET_ROWS = {"train": 40, "val": 100, "test": 1000}


def run(quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    trials, epochs = (1, 3) if quick else (3, 150)
    trials = trials_override or trials
    source_rows = {"train": 100, "val": 50} if quick else SOURCE_ROWS
    target_rows = {"train": 40, "val": 50, "test": 200} if quick else TARGET_ROWS
    spec = NetworkSpec(trunk=(64,), activation="tanh")
    result = ExperimentResult(
        name="transfer",
        metric="test RMSE (mean of 10 new tasks)",
        lower_is_better=True,
        protocol={"trials": trials, "source_rows": SOURCE_ROWS, "target_rows": TARGET_ROWS, "hidden": 64,
                  "epochs": epochs, "patience": 20, "lr": 0.005, "batch_size": 32, "seed": seed, "doc": __doc__},
        comparisons=[("frozen trunk", "scratch"), ("fine-tune x0.1", "scratch"), ("fine-tune x0.1", "frozen trunk")],
    )
    features = input_columns()
    for trial in range(trials):
        s = seed * 1000 + trial
        config = TrainConfig(epochs=epochs, batch_size=32, lr=0.005, patience=20, seed=s, val_metrics=False)
        source_frame, names = peaks_data(source_rows["train"] + source_rows["val"], seed=s)
        new = names[::12]
        source_tasks = [t for t in names if t not in new]
        src_split = consecutive_split(source_rows["train"], source_rows["val"], 0)
        data = DataConfig(features=tuple(features))
        source = train_model(prepare(source_frame, source_tasks, data, split=src_split), spec, config)
        target_frame, _ = peaks_data(sum(target_rows.values()), seed=s + 500_000)
        split = consecutive_split(target_rows["train"], target_rows["val"], target_rows["test"])
        prepared = prepare(target_frame, new, data, split=split)
        arms = {"scratch": train_model(prepared, spec, config)}
        for arm, start in (("frozen trunk", TransferStart(source, freeze_trunk=True)),
                           ("fine-tune x0.1", TransferStart(source, trunk_lr_scale=0.1))):
            arms[arm] = train_model(prepared, spec, config, setups=[start])
        for arm, model in arms.items():
            result.add(arm, float(np.mean([model.summary["test_metrics"][t]["rmse"] for t in new])))
        result.trial_done(trial, trials, quiet=quick)
    return result.finish()
