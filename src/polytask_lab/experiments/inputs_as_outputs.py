"""``inputs-as-outputs`` (Caruana & de Sa, NIPS 1996, "Promoting poor features to supervisors").

Protocol. ``A, B ~ U[-5, 5]``; main task ``F1 = sigmoid(A + B)``, extra feature
``F2 = sigmoid(A - B)``. Inputs: 10-bit binary codes of A and B (20 inputs; the code of ``v``
is the binary expansion, most significant bit first, of ``floor((v + 5) / 10 * 1024)``,
clipped to 1023). One hidden layer of 16 tanh units, linear output(s), Adam (lr 0.01),
full-batch, at most 600 epochs, per-task early stopping on the early-stopping rows (patience 60).
Arms, all on the same rows of a trial:

- ``STL``: F1 from the 20 inputs;
- ``F2 as input``: F1 from the 20 inputs plus F2 as a 21st input;
- ``F2 as output``: F1 with F2 as an auxiliary output (20 inputs; F2 is not needed to predict);
- ``F2 as output, shuffled``: the same with F2 permuted across training rows (shuffle control).

Each trial draws fresh 50 training, 1,000 early-stopping and 1,000 test rows (seed = base seed
+ trial); the score is F1's test RMSE. 50 trials (``--quick``: 2 trials of 5 epochs, 100 early-stopping and 200 test rows).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from polytask_lab.experiments.arms import consecutive_split, run_arm, test_score
from polytask_lab.experiments.common import ExperimentResult
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec

N_BITS = 10
ROWS = {"train": 50, "val": 1000, "test": 1000}


def binary_code(values: np.ndarray, low: float = -5.0, high: float = 5.0, bits: int = N_BITS) -> np.ndarray:
    """``bits``-bit binary codes (most significant first) of values quantized on ``[low, high]``."""
    levels = 2**bits
    k = np.clip(np.floor((np.asarray(values) - low) / (high - low) * levels), 0, levels - 1).astype(int)
    return ((k[:, None] >> np.arange(bits - 1, -1, -1)[None, :]) & 1).astype(float)


def make_data(n_rows: int, seed: int) -> pd.DataFrame:
    """Inputs ``a0..a9, b0..b9`` (binary codes), ``F1`` and ``F2``."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-5, 5, n_rows), rng.uniform(-5, 5, n_rows)
    frame = pd.DataFrame(np.hstack([binary_code(a), binary_code(b)]), columns=[f"a{i}" for i in range(N_BITS)] + [f"b{i}" for i in range(N_BITS)])
    frame["F1"] = 1.0 / (1.0 + np.exp(-(a + b)))
    frame["F2"] = 1.0 / (1.0 + np.exp(-(a - b)))
    return frame


def run(quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    trials = 2 if quick else 50
    trials = trials_override or trials
    epochs = 5 if quick else 600
    rows = {"train": 50, "val": 100, "test": 200} if quick else ROWS
    config = TrainConfig(epochs=epochs, batch_size=ROWS["train"], lr=0.01, patience=60, seed=seed)
    spec = NetworkSpec(trunk=(16,), activation="tanh")
    result = ExperimentResult(
        name="inputs-as-outputs",
        metric="test RMSE of F1",
        lower_is_better=True,
        protocol={"trials": trials, "rows": rows, "hidden": 16, "activation": "tanh", "epochs": epochs,
                  "patience": 60, "lr": 0.01, "seed": seed, "doc": __doc__},
        comparisons=[("F2 as output", "STL"), ("F2 as output", "F2 as input"), ("F2 as input", "STL"),
                     ("F2 as output", "F2 as output, shuffled")],
    )
    codes = [f"a{i}" for i in range(N_BITS)] + [f"b{i}" for i in range(N_BITS)]
    split = consecutive_split(rows["train"], rows["val"], rows["test"])
    for trial in range(trials):
        frame = make_data(sum(rows.values()), seed=seed * 1000 + trial)
        cfg = TrainConfig.from_dict({**config.to_dict(), "seed": seed * 1000 + trial})
        arms = {
            "STL": run_arm(frame, split, ["F1"], codes, spec, cfg),
            "F2 as input": run_arm(frame, split, ["F1"], codes + ["F2"], spec, cfg),
            "F2 as output": run_arm(frame, split, ["F1"], codes, spec, cfg, aux=["F2"]),
            "F2 as output, shuffled": run_arm(frame, split, ["F1"], codes, spec, cfg, aux=["F2"], shuffle_aux=True, shuffle_seed=trial),
        }
        for arm, report in arms.items():
            result.add(arm, test_score(report, "F1", "rmse"))
        result.trial_done(trial, trials, quiet=quick)
    return result.finish()
