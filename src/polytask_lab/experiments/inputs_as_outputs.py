"""``inputs-as-outputs`` (Caruana & de Sa, NIPS 1996, "Promoting poor features to supervisors";
Caruana 1997, section 4.9 and Table 6): the sensitivity of the effect to the input code and to
the training protocol.

Data. ``A, B ~ U[-5, 5]``; main task ``F1 = sigmoid(A + B)``, extra feature
``F2 = sigmoid(A - B)``. Inputs: a 10-input code of A and one of B (20 inputs), one of the
codes of :mod:`polytask_lab.experiments.codes` (binary, gray, thermometer, sign-magnitude,
coarse). The paper says only "10-bit binary codes".

Arms, all on the same rows of a trial: ``STL`` (F1 from the 20 inputs), ``IN`` (F1 from the 20
inputs plus F2 as a 21st input), ``OUT`` (F1 with F2 as an auxiliary output; F2 is not needed to
predict) and ``OUT shuffled`` (the same with F2 permuted across the training rows: the shuffle
control). One hidden layer of 16 units, per-task early stopping on the halt rows.

Protocols:

- ``modern``: tanh units, inputs and targets standardized on the training rows, linear outputs,
  Adam (lr 0.01), full batch, at most 600 epochs, patience 60 (the project's first protocol);
- ``classic`` (back-propagation as in the paper's time): sigmoid hidden units, the raw 0/1 (or
  bump) inputs, raw targets, sigmoid output units (``DataConfig(standardize_inputs=False,
  standardize_targets=False, bounded_outputs=...)``), full-batch gradient descent with momentum
  0.9 (lr 1.0 on the mean squared error), 2,000 epochs, and the best epoch on the halt rows kept
  for each task (per-task early stopping whose patience is the whole run: a best-epoch snapshot).

Each trial draws fresh 50 training, 1,000 halt and 1,000 test rows (seed = 1000 * seed +
trial), the same rows for every code and protocol; the score is F1's test RMSE. 30 trials
(``--quick``: 2 trials of 5 epochs, 100 halt and 200 test rows). Within a protocol and code the
arms are compared with paired tests; each comparison (``OUT vs STL``, ``IN vs STL``, ``OUT vs
OUT shuffled``, ``OUT vs IN``) is a family over the 10 (protocol, code) conditions and its
p-values are Holm-adjusted across them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from polytask.auxiliary.shuffle import ShuffleAux
from polytask.data.config import DataConfig
from polytask.data.prepare import prepare
from polytask.data.splits import Split
from polytask.tasks import Targets
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, train_model
from polytask_lab.experiments.arms import consecutive_split
from polytask_lab.experiments.codes import CODES, encode
from polytask_lab.experiments.common import ExperimentResult

N_BITS = 10
ROWS = {"train": 50, "val": 1000, "test": 1000}
PROTOCOLS = ("modern", "classic")
ARMS = ("STL", "IN", "OUT", "OUT shuffled")
#: (a, b, family name): each family runs over the 10 (protocol, code) conditions.
CONTRASTS = (("OUT", "STL", "OUT vs STL"), ("IN", "STL", "IN vs STL"), ("OUT", "OUT shuffled", "OUT vs shuffled"),
             ("OUT", "IN", "OUT vs IN"))
#: Caruana 1997, Table 6 (50 trials, binary codes, back-propagation with early stopping).
PAPER = {"STL": 0.0648, "IN": 0.0647, "OUT": 0.0631, "OUT vs STL p": 0.013, "IN vs STL": "not significant",
         "trials": 50, "source": "Caruana 1997, Machine Learning 28, Table 6"}
CLASSIC_LR, CLASSIC_EPOCHS, MODERN_EPOCHS = 1.0, 2000, 600


def arm_name(protocol: str, code: str, arm: str) -> str:
    return f"{protocol}/{code}: {arm}"


def make_data(n_rows: int, seed: int, code: str = "binary") -> pd.DataFrame:
    """Inputs ``a0..a9, b0..b9`` (the code of A and of B), ``F1`` and ``F2``."""
    rng = np.random.default_rng(seed)
    a, b = rng.uniform(-5, 5, n_rows), rng.uniform(-5, 5, n_rows)
    columns = [f"a{i}" for i in range(N_BITS)] + [f"b{i}" for i in range(N_BITS)]
    frame = pd.DataFrame(np.hstack([encode(a, code), encode(b, code)]), columns=columns)
    frame["F1"] = 1.0 / (1.0 + np.exp(-(a + b)))
    frame["F2"] = 1.0 / (1.0 + np.exp(-(a - b)))
    return frame


def settings(protocol: str, epochs: int, seed: int) -> tuple[NetworkSpec, TrainConfig, dict[str, Any]]:
    """Network, training and data settings of a protocol (the data settings as DataConfig keywords)."""
    if protocol == "classic":
        config = TrainConfig(epochs=epochs, batch_size=ROWS["train"], optimizer="sgd", lr=CLASSIC_LR, momentum=0.9,
                             patience=epochs, seed=seed, val_metrics=False)
        data = {"standardize_inputs": False, "standardize_targets": False}
        return NetworkSpec(trunk=(16,), activation="sigmoid"), config, data
    config = TrainConfig(epochs=epochs, batch_size=ROWS["train"], lr=0.01, patience=60, seed=seed, val_metrics=False)
    return NetworkSpec(trunk=(16,), activation="tanh"), config, {}


def run_condition(frame: pd.DataFrame, split: Split, protocol: str, epochs: int, seed: int) -> dict[str, float]:
    """F1's test RMSE for the four arms of one trial under one protocol."""
    spec, config, data = settings(protocol, epochs, seed)
    codes = [c for c in frame.columns if c[0] in "ab"]
    arms = {"STL": (codes, ()), "IN": (codes + ["F2"], ()), "OUT": (codes, ("F2",)), "OUT shuffled": (codes, ("F2",))}
    out = {}
    for arm, (features, aux) in arms.items():
        bounded = ("F1",) + aux if protocol == "classic" else None
        prepared = prepare(frame, Targets(("F1",), aux), DataConfig(features=tuple(features), bounded_outputs=bounded,
                                                                      **data), split=split)
        setups = [ShuffleAux(seed)] if arm == "OUT shuffled" else []
        model = train_model(prepared, spec, config, setups=setups)
        out[arm] = float(model.summary["test_metrics"]["F1"]["rmse"])
    return out


def run(quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    trials = trials_override or (2 if quick else 30)
    epochs = {"modern": 5, "classic": 5} if quick else {"modern": MODERN_EPOCHS, "classic": CLASSIC_EPOCHS}
    rows = {"train": 50, "val": 100, "test": 200} if quick else ROWS
    conditions = [(p, c) for p in PROTOCOLS for c in CODES]
    result = ExperimentResult(
        name="inputs-as-outputs",
        metric="test RMSE of F1",
        lower_is_better=True,
        protocol={"trials": trials, "rows": rows, "hidden": 16, "epochs": epochs, "codes": list(CODES),
                  "protocols": list(PROTOCOLS), "classic_lr": CLASSIC_LR, "seed": seed, "doc": __doc__},
        comparisons=[(arm_name(p, c, a), arm_name(p, c, b), family) for a, b, family in CONTRASTS
                     for p, c in conditions],
        extra={"paper": PAPER, "conditions": [list(pc) for pc in conditions], "arms": list(ARMS)},
    )
    split = consecutive_split(rows["train"], rows["val"], rows["test"])
    for trial in range(trials):
        s = seed * 1000 + trial
        for code in CODES:
            frame = make_data(sum(rows.values()), seed=s, code=code)  # the same A, B for every code
            for protocol in PROTOCOLS:
                for arm, value in run_condition(frame, split, protocol, epochs[protocol], s).items():
                    result.add(arm_name(protocol, code, arm), value)
        result.trial_done(trial, trials, quiet=quick)
    return result.finish()


def sensitivity_table(saved: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per (protocol, code) from a saved result: the four arms' means, each contrast's
    mean difference, wins, raw and Holm-adjusted p-values, and whether the paper's pattern shows
    (IN not significantly different from STL, OUT significantly better than STL and than its
    shuffle, all at Holm p < 0.05)."""
    tests = {(t["a"], t["b"]): t for t in saved["paired_tests"]}
    rows = []
    for protocol, code in saved["extra"]["conditions"]:
        row: dict[str, Any] = {"protocol": protocol, "code": code,
                               "means": {a: saved["summary"][arm_name(protocol, code, a)]["mean"] for a in ARMS}}
        for a, b, family in CONTRASTS:
            row[family] = tests[(arm_name(protocol, code, a), arm_name(protocol, code, b))]
        significant = {f: row[f]["holm_p"] < 0.05 and row[f]["mean_diff"] < 0 for f in ("OUT vs STL", "OUT vs shuffled")}
        row["pattern"] = bool(all(significant.values()) and not row["IN vs STL"]["holm_p"] < 0.05)
        rows.append(row)
    return rows
