"""``grouping``: does ``polytask group`` recover clusters of tasks that are plainly there?

Problems (:func:`block_clusters`). The inputs are ``4 K`` independent standard normal columns
cut into ``K`` disjoint blocks of 4, one per cluster. Cluster ``c`` has a nonlinear feature of
its own block, ``h_c = standardize(tanh(x_c . w_c / 2) * |x_c0|)`` (``w_c`` standard normal),
and each of its tasks is a noisy linear function of it, ``y_t = a_t h_c + b_t + N(noise)``
with ``|a_t|`` uniform on [0.5, 1.5], a random sign, and ``b_t`` uniform on [-1, 1]. Tasks of
different clusters share nothing.

Protocol. Cluster shapes (3, 3), (2, 2, 2), (4, 2) and (2, 3, 3); noise 0.5 or 1.0; 500 or
1,500 rows (70 % for training, the rest held out as ``polytask group`` does): 16 problem
configurations, each drawn afresh per trial (seed = 1000 * seed + 16 * trial + configuration).
Every problem is measured once as ``polytask group`` does with its defaults (one hard-sharing
network with layers 64, 64, Adam lr 1e-3, batch 64, at most 100 epochs with patience 20; cosine
and TAG recorded every 10 steps; sharing measured after training) and every affinity source is
turned into groups with ``--max-groups`` set to the true number of clusters. Score: the adjusted
Rand index (ARI, scikit-learn) between the chosen groups and the clusters (1: exact recovery; 0:
chance). The JSON also has, per source, the fraction of problems recovered exactly and the ARI
with the number of groups left free.

Sources: ``tag``, ``cosine`` (``cosine_mean``), ``sharing`` (``sharing_gradient``),
``sharing_ablation``, ``combined`` (cosine and sharing, :mod:`polytask.relate.combine`) and
``combined+tag`` (the three). The default of ``polytask group`` was chosen on the validation
run (``--seed 0``, 3 trials) and is checked on a fresh run (``--seed 1``, 5 trials) reported in
docs/RELATEDNESS.md. ``--quick``: 1 trial of 2 configurations, 3 epochs.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

import numpy as np
import pandas as pd

from polytask.relate import choose_groups, measure_relatedness
from polytask.relate.combine import combine
from polytask.relate.matrix import TaskMatrix
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, prepare
from polytask_lab.experiments.common import ExperimentResult

SHAPES: tuple[tuple[int, ...], ...] = ((3, 3), (2, 2, 2), (4, 2), (2, 3, 3))
NOISES = (0.5, 1.0)
ROWS = (500, 1500)
BLOCK = 4
SOURCES = ("combined", "tag", "cosine", "sharing", "sharing_ablation", "combined+tag")


def block_clusters(n_rows: int, sizes: Sequence[int], noise: float, seed: int, block: int = BLOCK
                   ) -> tuple[pd.DataFrame, list[list[str]]]:
    """A table of inputs ``x0..`` and targets ``t0..`` with the clusters of task names (see the
    module docstring)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_rows, block * len(sizes)))
    columns: dict[str, np.ndarray] = {f"x{i}": x[:, i] for i in range(x.shape[1])}
    clusters: list[list[str]] = []
    for c, size in enumerate(sizes):
        xb = x[:, c * block:(c + 1) * block]
        h = np.tanh(xb @ rng.normal(size=block) / np.sqrt(block)) * np.abs(xb[:, 0])
        h = (h - h.mean()) / h.std()
        members = []
        for _ in range(size):
            name = f"t{sum(len(m) for m in clusters) + len(members)}"
            slope = rng.choice([-1.0, 1.0]) * rng.uniform(0.5, 1.5)
            columns[name] = slope * h + rng.uniform(-1.0, 1.0) + noise * rng.normal(size=n_rows)
            members.append(name)
        clusters.append(members)
    return pd.DataFrame(columns), clusters


def source_matrices(matrices: dict[str, TaskMatrix]) -> dict[str, TaskMatrix]:
    """Every source's affinity matrix from one measurement."""
    out = {"tag": matrices["tag"], "cosine": matrices["cosine_mean"], "sharing": matrices["sharing_gradient"],
           "sharing_ablation": matrices["sharing_ablation"]}
    out["combined"] = combine([out["cosine"], out["sharing"]])
    out["combined+tag"] = combine([out["cosine"], out["sharing"], out["tag"]], name="combined+tag")
    return out


def ari(groups: Sequence[Sequence[str]], clusters: Sequence[Sequence[str]]) -> float:
    from sklearn.metrics import adjusted_rand_score

    truth = {t: c for c, members in enumerate(clusters) for t in members}
    found = {t: g for g, members in enumerate(groups) for t in members}
    names = sorted(truth)
    return float(adjusted_rand_score([truth[t] for t in names], [found[t] for t in names]))


def score_problem(frame: pd.DataFrame, clusters: list[list[str]], seed: int, epochs: int) -> dict[str, dict[str, float]]:
    """ARI per source with K = the number of clusters and with K free, and exact recovery."""
    names = [t for members in clusters for t in members]
    prepared = prepare(frame, names, seed=seed)
    measured = measure_relatedness(prepared, "all", every=10, spec=NetworkSpec(),
                                   config=TrainConfig(epochs=epochs, seed=seed, val_metrics=False))
    out = {}
    for source, matrix in source_matrices(measured.matrices).items():
        fixed = choose_groups(matrix, max_groups=len(clusters)).groups
        free = choose_groups(matrix).groups
        out[source] = {"ari": ari(fixed, clusters), "ari_free": ari(free, clusters),
                       "exact": float(ari(fixed, clusters) == 1.0)}
    return out


def run(quick: bool = False, seed: int = 0, trials_override: int | None = None) -> ExperimentResult:
    trials = trials_override or (1 if quick else 3 if seed == 0 else 5)
    configs = list(product(SHAPES, NOISES, ROWS))[: 2 if quick else None]
    epochs = 3 if quick else 100
    result = ExperimentResult(
        name="grouping", metric="adjusted Rand index of the groups (K = number of clusters)", lower_is_better=False,
        protocol={"trials": trials * len(configs), "repeats": trials, "configurations": [[list(s), n, r] for s, n, r in configs], "epochs": epochs,
                  "every": 10, "seed": seed, "doc": __doc__},
        comparisons=[("combined", s, "combined vs others") for s in SOURCES if s != "combined"],
    )
    per_problem: list[dict[str, object]] = []
    for trial in range(trials):
        for k, (shape, noise, rows) in enumerate(configs):
            s = seed * 1000 + len(configs) * trial + k
            frame, clusters = block_clusters(rows, shape, noise, s)
            scores = score_problem(frame, clusters, s, epochs)
            for source in SOURCES:
                result.add(source, scores[source]["ari"])
            per_problem.append({"trial": trial, "shape": list(shape), "noise": noise, "rows": rows, "seed": s,
                                "scores": scores})
        result.trial_done(trial, trials, quiet=quick)
    result.extra["problems"] = per_problem
    result.extra["exact"] = {src: float(np.mean([p["scores"][src]["exact"] for p in per_problem])) for src in SOURCES}  # type: ignore[index]
    result.extra["ari_free"] = {src: float(np.mean([p["scores"][src]["ari_free"] for p in per_problem]))  # type: ignore[index]
                                for src in SOURCES}
    return result.finish()
