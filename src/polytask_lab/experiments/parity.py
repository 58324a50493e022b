"""``parity``: four boolean tasks that share a parity sub-feature (Caruana 1997, thesis ch. 1).

Protocol. Inputs are 8 bits ``B1..B8`` (``B7, B8`` are irrelevant); ``Par = B2 XOR ... XOR B6``;

    T1 = B1 OR Par,   T2 = (NOT B1) OR Par,   T3 = B1 AND Par,   T4 = (NOT B1) AND Par.

Each task reveals ``Par`` on only half of the rows (T1 only where B1 = 0, ...), but together
they reveal it on every row: learning the shared parity feature from all four training
signals should be easier than from one. Each trial shuffles the 256 patterns (seed = base
seed + trial) into 128 training, 64 early-stopping and 64 test rows. MTL: one net, one hidden
layer of 64 tanh units, four logistic outputs. STL: four such nets, one per task (same
width). Adam (lr 0.01), batch 32, at most 1,000 epochs, per-task early stopping (patience
300). Score: test accuracy averaged over the four tasks. 20 trials (``--quick``: 2 trials of 5
epochs).

Parity is learnt after a long plateau, so patience matters: the two earlier protocols
(patience 80 and 150) cut MTL short in a quarter of the trials (docs/EXPERIMENTS.md).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from polytask_lab.experiments.arms import run_arm
from polytask_lab.experiments.common import ExperimentResult
from polytask.data.splits import Split
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec

TASKS = ("T1", "T2", "T3", "T4")
BITS = [f"B{i}" for i in range(1, 9)]
HIDDEN, LR, EPOCHS, PATIENCE = 64, 0.01, 1000, 300


def make_patterns() -> pd.DataFrame:
    """All 256 patterns of ``B1..B8`` with the four task labels (0/1)."""
    bits = np.array(list(itertools.product([0, 1], repeat=8)))
    frame = pd.DataFrame(bits.astype(float), columns=BITS)
    b1 = bits[:, 0].astype(bool)
    par = (bits[:, 1:6].sum(axis=1) % 2).astype(bool)
    frame["T1"] = (b1 | par).astype(int)
    frame["T2"] = (~b1 | par).astype(int)
    frame["T3"] = (b1 & par).astype(int)
    frame["T4"] = (~b1 & par).astype(int)
    return frame


def run(quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    trials = 2 if quick else 20
    trials = trials_override or trials
    epochs = 5 if quick else EPOCHS
    spec = NetworkSpec(trunk=(HIDDEN,), activation="tanh")
    result = ExperimentResult(
        name="parity",
        metric="test accuracy (mean of T1..T4)",
        lower_is_better=False,
        protocol={"trials": trials, "rows": {"train": 128, "val": 64, "test": 64}, "hidden": HIDDEN,
                  "epochs": epochs, "patience": PATIENCE, "lr": LR, "batch_size": 32, "seed": seed, "doc": __doc__},
        comparisons=[("MTL", "STL")],
    )
    frame = make_patterns()
    per_task: dict[str, dict[str, list[float]]] = {"MTL": {t: [] for t in TASKS}, "STL": {t: [] for t in TASKS}}
    for trial in range(trials):
        s = seed * 1000 + trial
        order = np.random.default_rng(s).permutation(len(frame))
        split = Split(np.sort(order[:128]), np.sort(order[128:192]), np.sort(order[192:]))
        config = TrainConfig(epochs=epochs, batch_size=32, lr=LR, patience=PATIENCE, seed=s)
        report = run_arm(frame, split, TASKS, BITS, spec, config, kinds={t: "binary" for t in TASKS}, stl=True)
        for arm, model in (("MTL", report.mtl), ("STL", report.stl)):
            assert model is not None
            acc = [float(model.summary["test_metrics"][t]["accuracy"]) for t in TASKS]
            for t, a in zip(TASKS, acc):
                per_task[arm][t].append(a)
            result.add(arm, float(np.mean(acc)))
        result.trial_done(trial, trials, quiet=quick)
    result.extra["per_task_accuracy"] = {arm: {t: float(np.mean(v)) for t, v in d.items()} for arm, d in per_task.items()}
    return result.finish()
