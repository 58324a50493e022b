"""The candidates a comparison runs on identical splits, and how each is trained and scored.

Families: ``stl`` (T independent networks, the reference of every delta-m), ``mtl`` (one
network per chosen architecture x balancer, both named by their registry NAME), and the
scikit-learn baselines ``hgb``, ``linear`` (per task) and ``mlp`` (one multi-output MLP).
Every candidate returns metrics on the validation and the test rows of the same prepared split;
model selection (early stopping, hyperparameter grids) sees validation rows only.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from polytask import balancers
from polytask.compare import baselines as bl
from polytask.errors import PolytaskError
from polytask.evaluate import task_metrics
from polytask.models import ARCHITECTURES
from polytask.training.config import TrainConfig
from polytask.data.prepare import Prepared
from polytask.setups import stl_settings
from polytask.workflow import NetworkSpec, train_model

BASELINES: tuple[str, ...] = ("hgb", "linear", "mlp")
FAMILIES: tuple[str, ...] = ("stl", "mtl") + BASELINES


@dataclass(frozen=True)
class Candidate:
    """One model family to compare; ``arch`` and ``balancer`` only for ``mtl``."""

    family: str
    arch: str | None = None
    balancer: str | None = None
    balancer_options: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # baseline settings, e.g. {"max_iter": 50}

    @property
    def name(self) -> str:
        if self.family == "mtl":
            return f"mtl:{self.arch}+{self.balancer}"
        return self.family

    @property
    def is_network(self) -> bool:
        return self.family in ("stl", "mtl")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "family": self.family, "arch": self.arch, "balancer": self.balancer,
                "balancer_options": dict(self.balancer_options), "options": dict(self.options)}


@dataclass
class CandidateRun:
    """What one candidate produced on one split."""

    val: dict[str, dict[str, float]]
    test: dict[str, dict[str, float]]
    parameters: int | None
    seconds: float
    note: str = ""
    epochs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"val": self.val, "test": self.test, "parameters": self.parameters,
                "seconds": self.seconds, "note": self.note, "epochs": self.epochs}


def build_candidates(
    archs: Sequence[str], balancer_names: Sequence[str], baseline_names: Sequence[str],
    balancer_options: dict[str, Any] | None = None, baseline_options: dict[str, dict[str, Any]] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> list[Candidate]:
    """STL, then MTL for every (arch, balancer), then the baselines; names are checked now so a
    typo fails before any training. ``pairs`` lists (arch, balancer) explicitly instead of the
    cross product of ``archs`` and ``balancer_names``."""
    pairs = list(pairs) if pairs is not None else [(a, b) for a in archs for b in balancer_names]
    archs = list(dict.fromkeys(a for a, _ in pairs))
    balancer_names = list(dict.fromkeys(b for _, b in pairs))
    for a in archs:
        if a not in ARCHITECTURES or a == "stl":
            names = ", ".join(sorted(x for x in ARCHITECTURES if x != "stl"))
            raise PolytaskError(f"unknown architecture '{a}' (choose from {names})")
    options = dict(balancer_options or {})
    for b in balancer_names:
        balancers.get(b, **options)
    for b in baseline_names:
        if b not in BASELINES:
            raise PolytaskError(f"unknown baseline '{b}' (choose from {', '.join(BASELINES)})")
    out = [Candidate("stl")]
    out += [Candidate("mtl", a, b, options) for a, b in pairs]
    out += [Candidate(b, options=dict((baseline_options or {}).get(b, {}))) for b in dict.fromkeys(baseline_names)]
    return out


def _main_only(prepared: Prepared, metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    main = [t.name for t in prepared.tasks if not t.auxiliary]
    return {t: metrics[t] for t in main if t in metrics}


def run_candidate(
    candidate: Candidate, prepared: Prepared, spec: NetworkSpec, config: TrainConfig, seed: int,
    match_params_to: int | None = None,
) -> CandidateRun:
    """Train ``candidate`` on ``prepared`` (seeded) and score it on validation and test rows."""
    if candidate.is_network:
        cfg = replace(config, seed=seed)
        if candidate.family == "mtl":
            cfg = replace(cfg, balancer=candidate.balancer or "ew", balancer_options=dict(candidate.balancer_options))
            net_spec = replace(spec, arch=candidate.arch or "hps")
            model = train_model(prepared, net_spec, cfg)
        else:
            model = train_model(prepared, *stl_settings(spec, cfg, prepared, match_params_to), name="stl")
        s = model.summary
        return CandidateRun(
            _main_only(prepared, s["val_metrics"]), _main_only(prepared, s["test_metrics"]),
            int(s["parameters"]["total"]), float(s["train_seconds"]), epochs=int(s["epochs_run"]),
        )
    main = [e for e in prepared.encoders if not e.task.auxiliary]
    train, val, test = (bl.Arrays.of(d) for d in (prepared.train, prepared.val, prepared.test))
    started = time.perf_counter()
    if candidate.family == "mlp":
        hidden = spec.trunk + spec.head_hidden or (64,)
        (out_val, out_test), params = bl.mlp_baseline_outputs(main, train, val, [val, test], seed, hidden,
                                                              **candidate.options)
    else:
        (out_val, out_test), params = bl.per_task_outputs(candidate.family, main, train, val, [val, test], seed,
                                                          **candidate.options)
    seconds = time.perf_counter() - started

    def score(outputs: dict[str, Any], split: bl.Arrays) -> dict[str, dict[str, float]]:
        return {
            e.task.name: task_metrics(e, outputs[e.task.name], split.targets[e.task.name], split.masks[e.task.name])
            for e in main
        }

    return CandidateRun(score(out_val, val), score(out_test, test), params, seconds)
