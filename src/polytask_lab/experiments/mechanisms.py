"""One small synthetic experiment per mechanism by which Caruana (1997, section 3) says MTL
helps, each with the shuffle control.

Every experiment has a main regression task ``y`` and auxiliary tasks ``aux*`` built so that
one mechanism should be at work. Arms, on the same rows of each trial:

- ``STL``: ``y`` alone;
- ``MTL``: ``y`` plus the auxiliary tasks (one shared hidden layer, one head each);
- ``MTL, aux shuffled``: the same with every auxiliary target permuted across the training rows
  (seeded): same label distribution, no information about the rows.

MTL should beat STL, and the gain should vanish under the shuffle. The score is the main task's
test RMSE against its *noise-free* value (test rows carry no label noise, so the score measures
the learned function, not the noise floor). Common settings: one hidden layer of 16 tanh units
(4 for attribute-selection and eavesdropping, see below),
Adam (lr 0.01; 0.003 for attribute-selection and eavesdropping, where 0.01 stopped within a
few epochs), batch 32, at most 400 epochs, per-task early stopping on the validation rows
(patience 50), 20 trials (``--quick``: 2 trials of 5 epochs, 100 validation and 200 test rows), trial seed = 1000 * seed + trial.

Designs (inputs uniform on [-1, 1], ``N(s)`` Gaussian noise of standard deviation s):

- ``amplification`` (statistical data amplification): 8 inputs; a hidden feature
  ``F = 1.5 tanh(x0 + x1 - x2 + x3)``; ``y = F + N(1)`` and six auxiliary tasks
  ``aux_j = F + N(1)`` with independent noise. The extra tasks are extra noisy looks at the
  same feature: averaging them amplifies the effective sample size. 40 training rows.
- ``attribute-selection``: 30 inputs of which only ``x0, x1`` matter; ``y = tanh(3 x0 + 3 x1)
  + N(0.3)``; six auxiliary tasks ``aux_j = tanh(u_j x0 + v_j x1) + N(0.1)`` with
  ``(u, v)`` in (3, -3), (3, 1.5), (1.5, 3), (3, 0), (0, 3), (-2, 3). They use the same two
  attributes, which helps the shared layer ignore the 28 irrelevant ones. 40 training rows,
  4 hidden units. (With 16 units the shuffled control kept most of MTL's gain: extra outputs
  regularised the wide layer whatever their labels.)
- ``eavesdropping``: 10 inputs; a sharp feature ``F = 1[x0 + x1 > 0]``. The main task sees it
  only through heavy noise, ``y = F + 0.5 x2 + N(0.7)``, while ``aux1 = F + N(0.05)`` shows
  it almost clean: the main task can eavesdrop on the feature the auxiliary task learns.
  80 training rows, 4 hidden units. (The first design, ``y = 0.6 F + sin(3 x2) + x3 + N(0.4)``
  with 16 units, showed no effect: with 80 noisy rows the error of ``y``'s 17 head weights
  swamped whatever the shared layer gained.)
- ``representation-bias``: 6 inputs plus a shortcut ``s``. ``y = tanh(2 x0) + tanh(2 x1) + N(0.1)``;
  on training and validation rows ``s = y + N(0.3)`` (a leaky proxy), on test rows ``s`` is
  independent noise (the proxy breaks). ``aux1 = tanh(2 x0)``, ``aux2 = tanh(2 x1)``
  (``+ N(0.05)``) prefer a representation built from ``x0, x1``, biasing the shared layer
  towards features that still hold on the test rows. 60 training rows.

Validation rows: 300; test rows: 2,000.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from polytask_lab.experiments.arms import consecutive_split, run_arm, test_score
from polytask_lab.experiments.common import ExperimentResult
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec

N_VAL = 300
N_TEST = 2000

Generator = Callable[[int, int, np.random.Generator], pd.DataFrame]


def _inputs(rng: np.random.Generator, n: int, p: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    x = rng.uniform(-1.0, 1.0, size=(n, p))
    return x, {f"x{i}": x[:, i] for i in range(p)}


def _finish(cols: dict[str, np.ndarray], clean: np.ndarray, noise: np.ndarray, n_test: int) -> pd.DataFrame:
    """Main target ``y = clean + noise`` except on the last ``n_test`` rows (noise-free)."""
    y = clean + noise
    if n_test:
        y[-n_test:] = clean[-n_test:]
    cols["y"] = y
    return pd.DataFrame(cols)


def amplification(n: int, n_test: int, rng: np.random.Generator) -> pd.DataFrame:
    x, cols = _inputs(rng, n, 8)
    f = 1.5 * np.tanh(x[:, 0] + x[:, 1] - x[:, 2] + x[:, 3])
    for j in range(1, 7):
        cols[f"aux{j}"] = f + rng.normal(0, 1.0, n)
    return _finish(cols, f, rng.normal(0, 1.0, n), n_test)


def attribute_selection(n: int, n_test: int, rng: np.random.Generator) -> pd.DataFrame:
    x, cols = _inputs(rng, n, 30)
    a, b = x[:, 0], x[:, 1]
    for j, (u, v) in enumerate(((3, -3), (3, 1.5), (1.5, 3), (3, 0), (0, 3), (-2, 3)), start=1):
        cols[f"aux{j}"] = np.tanh(u * a + v * b) + rng.normal(0, 0.1, n)
    return _finish(cols, np.tanh(3 * a + 3 * b), rng.normal(0, 0.3, n), n_test)


def eavesdropping(n: int, n_test: int, rng: np.random.Generator) -> pd.DataFrame:
    x, cols = _inputs(rng, n, 10)
    f = (x[:, 0] + x[:, 1] > 0).astype(float)
    cols["aux1"] = f + rng.normal(0, 0.05, n)
    return _finish(cols, f + 0.5 * x[:, 2], rng.normal(0, 0.7, n), n_test)


def representation_bias(n: int, n_test: int, rng: np.random.Generator) -> pd.DataFrame:
    x, cols = _inputs(rng, n, 6)
    g0, g1 = np.tanh(2 * x[:, 0]), np.tanh(2 * x[:, 1])
    clean = g0 + g1
    noise = rng.normal(0, 0.1, n)
    shortcut = clean + noise + rng.normal(0, 0.3, n)
    if n_test:
        shortcut[-n_test:] = rng.normal(0, float(np.std(clean)), n_test)
    cols["s"] = shortcut
    cols["aux1"] = g0 + rng.normal(0, 0.05, n)
    cols["aux2"] = g1 + rng.normal(0, 0.05, n)
    return _finish(cols, clean, noise, n_test)


@dataclass(frozen=True)
class Mechanism:
    name: str
    generate: Callable[[int, int, np.random.Generator], pd.DataFrame]
    n_train: int
    lr: float = 0.01
    hidden: int = 16


MECHANISMS: dict[str, Mechanism] = {
    m.name: m
    for m in (
        Mechanism("amplification", amplification, 40),
        Mechanism("attribute-selection", attribute_selection, 40, lr=0.003, hidden=4),
        Mechanism("eavesdropping", eavesdropping, 80, lr=0.003, hidden=4),
        Mechanism("representation-bias", representation_bias, 60),
    )
}


def run_mechanism(name: str, quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    mech = MECHANISMS[name]
    trials = 2 if quick else 20
    trials = trials_override or trials
    epochs = 5 if quick else 400
    n_val, n_test = (100, 200) if quick else (N_VAL, N_TEST)
    spec = NetworkSpec(trunk=(mech.hidden,), activation="tanh")
    result = ExperimentResult(
        name=name,
        metric="test RMSE of y (noise-free test targets)",
        lower_is_better=True,
        protocol={"trials": trials, "rows": {"train": mech.n_train, "val": n_val, "test": n_test}, "hidden": mech.hidden,
                  "activation": "tanh", "epochs": epochs, "patience": 50, "lr": mech.lr, "batch_size": 32, "seed": seed,
                  "design": getattr(mech.generate, "__name__", name), "doc": __doc__},
        comparisons=[("MTL", "STL"), ("MTL", "MTL, aux shuffled"), ("MTL, aux shuffled", "STL")],
    )
    split = consecutive_split(mech.n_train, n_val, n_test)
    for trial in range(trials):
        s = seed * 1000 + trial
        frame = mech.generate(mech.n_train + n_val + n_test, n_test, np.random.default_rng(s))
        aux = [c for c in frame.columns if c.startswith("aux")]
        features = [c for c in frame.columns if c != "y" and c not in aux]
        config = TrainConfig(epochs=epochs, batch_size=32, lr=mech.lr, patience=50, seed=s)
        arms = {
            "STL": run_arm(frame, split, ["y"], features, spec, config),
            "MTL": run_arm(frame, split, ["y"], features, spec, config, aux=aux),
            "MTL, aux shuffled": run_arm(frame, split, ["y"], features, spec, config, aux=aux, shuffle_aux=True, shuffle_seed=s),
        }
        for arm, report in arms.items():
            result.add(arm, test_score(report, "y", "rmse"))
        result.trial_done(trial, trials, quiet=quick)
    return result.finish()
