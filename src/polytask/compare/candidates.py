"""The candidates a comparison runs on identical splits, and how each is trained and scored.

Families: ``stl`` (T independent networks, the reference of every delta-m), ``mtl`` (one
network per chosen architecture x balancer, both named by their registry NAME), and the
scikit-learn baselines ``hgb``, ``linear`` (per task) and ``mlp`` (one multi-output MLP).
Every candidate returns metrics on the validation and the test rows of the same prepared split;
model selection (early stopping, hyperparameter grids) sees validation rows only. A network
candidate may carry a tuning ``grid``: settings to try (each a mapping of ``NetworkSpec`` or
``TrainConfig`` fields, e.g. ``{"lr": 3e-3}``); every entry is trained and the one with the
lowest validation loss (the mean over main tasks of the loss in training units: squared error
on standardized targets, log-loss) is the candidate's result on that split.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from polytask import balancers
from polytask.compare import baselines as bl
from polytask.errors import PolytaskError
from polytask.evaluate import metrics_by_task
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
    grid: tuple[dict[str, Any], ...] = ()  # network settings to choose from on validation rows

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
                "balancer_options": dict(self.balancer_options), "options": dict(self.options),
                "grid": [dict(g) for g in self.grid]}


@dataclass
class CandidateRun:
    """What one candidate produced on one split."""

    val: dict[str, dict[str, float]]
    test: dict[str, dict[str, float]]
    parameters: int | None
    seconds: float
    note: str = ""
    epochs: int | None = None
    chosen: dict[str, Any] = field(default_factory=dict)  # the grid entry picked on validation rows
    val_loss: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"val": self.val, "test": self.test, "parameters": self.parameters,
                "seconds": self.seconds, "note": self.note, "epochs": self.epochs, "chosen": self.chosen,
                "val_loss": self.val_loss}


def build_candidates(
    archs: Sequence[str], balancer_names: Sequence[str], baseline_names: Sequence[str],
    balancer_options: dict[str, Any] | None = None, baseline_options: dict[str, dict[str, Any]] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None, grid: Sequence[dict[str, Any]] = (),
) -> list[Candidate]:
    """STL, then MTL for every (arch, balancer), then the baselines; names are checked now so a
    typo fails before any training. ``pairs`` lists (arch, balancer) explicitly instead of the
    cross product of ``archs`` and ``balancer_names``. ``grid``: the tuning grid of every
    network candidate, STL and MTL alike (one grid for all, so neither side is tuned more)."""
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
    grid = tuple(dict(g) for g in grid)
    for changes in grid:
        _with(NetworkSpec(), TrainConfig(), changes)  # unknown settings fail now
    out = [Candidate("stl", grid=grid)]
    out += [Candidate("mtl", a, b, options, grid=grid) for a, b in pairs]
    out += [Candidate(b, options=dict((baseline_options or {}).get(b, {}))) for b in dict.fromkeys(baseline_names)]
    return out


def _main_only(prepared: Prepared, metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    main = [t.name for t in prepared.tasks if not t.auxiliary]
    return {t: metrics[t] for t in main if t in metrics}


def validation_loss(model: Any, prepared: Prepared) -> float:
    """Mean over main tasks of the validation loss in training units (what a grid is chosen by)."""
    if len(prepared.val) == 0:
        return float("nan")
    raw = model.raw_outputs_from_features(prepared.val.x)
    losses = []
    for e in prepared.encoders:
        if e.task.auxiliary:
            continue
        out = e.link(raw[e.task.name]) if e.task.kind == "regression" else raw[e.task.name]
        kind = "binary" if e.task.kind == "multilabel" else e.task.kind
        losses.append(bl.selection_loss(kind, out, prepared.val.targets[e.task.name].numpy(),
                                        prepared.val.masks[e.task.name].numpy()))
    return float(np.nanmean(losses)) if losses and not np.all(np.isnan(losses)) else float("nan")


def _train_network(candidate: Candidate, prepared: Prepared, spec: NetworkSpec, config: TrainConfig,
                   match_params_to: int | None) -> Any:
    if candidate.family == "mtl":
        cfg = replace(config, balancer=candidate.balancer or "ew", balancer_options=dict(candidate.balancer_options))
        return train_model(prepared, replace(spec, arch=candidate.arch or "hps"), cfg)
    return train_model(prepared, *stl_settings(spec, config, prepared, match_params_to), name="stl")


def _with(spec: NetworkSpec, config: TrainConfig, changes: dict[str, Any]) -> tuple[NetworkSpec, TrainConfig]:
    spec_fields = {f.name for f in fields(spec)}
    config_fields = {f.name for f in fields(config)}
    unknown = [k for k in changes if k not in spec_fields | config_fields]
    if unknown:
        raise PolytaskError(f"tuning grid: unknown setting '{unknown[0]}'")
    return (replace(spec, **{k: v for k, v in changes.items() if k in spec_fields}),
            config.replace(**{k: v for k, v in changes.items() if k in config_fields and k not in spec_fields}))


def _run_network(candidate: Candidate, prepared: Prepared, spec: NetworkSpec, config: TrainConfig, seed: int,
                 match_params_to: int | None) -> CandidateRun:
    best: tuple[float, Any, dict[str, Any]] | None = None
    seconds = 0.0
    for changes in candidate.grid or ({},):
        run_spec, run_config = _with(spec, replace(config, seed=seed), dict(changes))
        model = _train_network(candidate, prepared, run_spec, run_config, match_params_to)
        seconds += float(model.summary["train_seconds"])
        loss = validation_loss(model, prepared)
        if best is None or (np.isfinite(loss) and not loss >= best[0]):
            best = (loss, model, dict(changes))
    assert best is not None
    loss, model, chosen = best
    s = model.summary
    return CandidateRun(_main_only(prepared, s["val_metrics"]), _main_only(prepared, s["test_metrics"]),
                        int(s["parameters"]["total"]), seconds, epochs=int(s["epochs_run"]), chosen=chosen,
                        val_loss=loss if np.isfinite(loss) else None)


def run_candidate(
    candidate: Candidate, prepared: Prepared, spec: NetworkSpec, config: TrainConfig, seed: int,
    match_params_to: int | None = None,
) -> CandidateRun:
    """Train ``candidate`` on ``prepared`` (seeded) and score it on validation and test rows."""
    if candidate.is_network:
        return _run_network(candidate, prepared, spec, config, seed, match_params_to)
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
        return metrics_by_task(main, outputs, split.targets, split.masks)

    return CandidateRun(score(out_val, val), score(out_test, test), params, seconds)
