"""The basic path: ``pt.fit`` with equal weighting and hard sharing against what a user would
otherwise run, in process CPU time, single-threaded.

At each point (rows, T) every candidate trains the same network, a 64-64 ReLU trunk and one
output per task, for the same epochs at batch 256 with Adam at lr 1e-3, on the same tensors
(T standardised regression targets of a related-tasks table, every label observed):

- ``minimal``: a hand-written PyTorch loop (one ``Linear(64, T)`` head, torch's default Adam,
  ``randperm`` batches, a validation pass each epoch); ``minimal (control)`` is a second,
  identical copy (its ratio to the first is the run's noise); ``minimal, fused Adam`` the same
  loop with torch's fused Adam, the implementation polytask uses;
- ``pt.fit``: ``polytask.fit`` on the prepared problem (network built, trained with
  validation loss and metrics each epoch and per-task early-stopping snapshots, evaluated on
  validation and test: everything the call does except reading the table);
- ``LibMTL step``: LibMTL's training step reproduced (its PyPI release cannot be imported with
  current torch, see :func:`libmtl_status`): one ``Linear(64, 1)`` decoder per task, the
  per-task loss loop, ``EW`` (``sum_t L_t``) backward, Adam;
- ``MLPRegressor``: scikit-learn's multi-output MLP with the same layers, batch, epochs and
  solver (float32 inputs; no validation pass, it has none without early stopping);
- ``CLI``: ``polytask fit`` on the table written as a CSV (a child process: start-up, reading,
  preparing, training, writing the model), at the smaller sizes only.

A candidate's time is its own CPU time, single-threaded. The machine's speed drifts on every time
scale, so the candidates of a round (all but the CLI) run together in lockstep
(:mod:`polytask_lab.bench.lockstep`): each in its own thread, one at a time, in turns of 20 ms
of CPU, the one furthest behind in its share of training steps always next, each timed by its
thread's CPU time. Every candidate thus meets the same stretches of the machine in proportion
to its own cost. A candidate's ratio in a round is its time over the minimal loop's in the same
lockstep; the figure is the median over rounds (each in a new shuffled order), with the lowest and
highest per-round ratio. The CLI, a child process, cannot take turns: each of its runs is
bracketed by two minimal-loop runs (:func:`bracketed_rounds`), ratio to their mean.

Epoch time against the number of tasks is measured the same way: at each row count, ``pt.fit``
on the fewest and on the most tasks in lockstep, the median of the per-round ratios
(:func:`run_scaling`).
"""

from __future__ import annotations

import gc
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from polytask_lab.bench.lockstep import Pause, Work, lockstep, ratios

WIDTHS = (64, 64)
BATCH = 256
LR = 1e-3
FEATURES = 20


@dataclass
class BasicSettings:
    """Points and effort: ``rows`` x ``task_counts``; ``epochs[rows]`` epochs per training;
    ``rounds`` interleaved rounds per point; ``cli_max_rows``: the CLI runs up to that size."""

    rows: tuple[int, ...] = (10_000, 100_000, 1_000_000)
    task_counts: tuple[int, ...] = (2, 10, 50)
    epochs: tuple[tuple[int, int], ...] = ((10_000, 10), (100_000, 2), (1_000_000, 1))
    rounds: int = 9
    cli_max_rows: int = 100_000
    seed: int = 0
    #: The candidates to time besides ``minimal`` (the reference); None: all of them.
    candidates: tuple[str, ...] | None = None

    @classmethod
    def quick(cls) -> "BasicSettings":
        return cls(rows=(2_000,), task_counts=(2,), epochs=((2_000, 2),), rounds=1, cli_max_rows=0)

    def epochs_for(self, rows: int) -> int:
        return dict(self.epochs).get(rows, 1)


def libmtl_status() -> str:
    """Why LibMTL's own trainer is not run (its import error), or that it imports."""
    try:
        import LibMTL  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any failure is the finding
        return f"{type(exc).__name__}: {exc}"
    return "imports"


def _problem(rows: int, n_tasks: int, seed: int) -> Any:
    from polytask.data.prepare import prepare
    from polytask.synthetic import related_tasks

    total = int(rows / 0.7) + 1  # the default split keeps 70 % for training
    frame, names = related_tasks(n_rows=total, n_features=FEATURES, n_tasks=n_tasks, noise=0.3, seed=seed)
    prepared = prepare(frame, names, seed=seed)
    return frame, names, prepared


def _tensors(prepared: Any, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    data = getattr(prepared, split)
    y = torch.cat([data.targets[t.name] for t in prepared.tasks], 1)
    return data.x.float(), y.float()


def _no_pause(units: int) -> None:
    """Timed alone: nothing to hand over."""


def steps_of(rows: int, epochs: int) -> int:
    """Training steps of ``epochs`` epochs over ``rows`` rows at batch :data:`BATCH`."""
    return epochs * -(-rows // BATCH)


def minimal_loop(x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, epochs: int, seed: int,
                 fused: bool = False, pause: Pause = _no_pause) -> float:
    """The hand-written reference: train, validate each epoch; returns the last validation loss.
    ``pause(1)`` after each step (lockstep timing)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], WIDTHS[0]), nn.ReLU(), nn.Linear(WIDTHS[0], WIDTHS[1]), nn.ReLU(),
                        nn.Linear(WIDTHS[1], y.shape[1]))
    opt = torch.optim.Adam(net.parameters(), lr=LR, fused=True) if fused else torch.optim.Adam(net.parameters(), lr=LR)
    order = torch.Generator().manual_seed(seed)
    val = float("nan")
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(x), generator=order).split(BATCH):
            loss = ((net(x[idx]) - y[idx]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            pause(1)
        net.eval()
        with torch.no_grad():
            val = float(((net(xv) - yv) ** 2).mean())
    return val


def libmtl_step_loop(x: torch.Tensor, y: torch.Tensor, xv: torch.Tensor, yv: torch.Tensor, epochs: int, seed: int,
                     pause: Pause = _no_pause) -> float:
    """LibMTL's HPS + EW training step as its trainer runs it: a decoder per task, a loss per
    task, ``losses.sum()`` backward (its EW), Adam; a validation pass per epoch."""
    torch.manual_seed(seed)
    encoder = nn.Sequential(nn.Linear(x.shape[1], WIDTHS[0]), nn.ReLU(), nn.Linear(WIDTHS[0], WIDTHS[1]), nn.ReLU())
    decoders = nn.ModuleDict({str(t): nn.Linear(WIDTHS[1], 1) for t in range(y.shape[1])})
    opt = torch.optim.Adam([*encoder.parameters(), *decoders.parameters()], lr=LR)
    order = torch.Generator().manual_seed(seed)
    val = float("nan")
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=order).split(BATCH):
            xb, yb = x[idx], y[idx]
            rep = encoder(xb)
            preds = {t: d(rep) for t, d in decoders.items()}
            losses = torch.zeros(len(decoders))
            for i, t in enumerate(decoders):
                losses[i] = ((preds[t][:, 0] - yb[:, i]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            torch.mul(losses, torch.ones_like(losses)).sum().backward()
            opt.step()
            pause(1)
        with torch.no_grad():
            rep = encoder(xv)
            val = float(sum(((d(rep)[:, 0] - yv[:, i]) ** 2).mean() for i, d in enumerate(decoders.values())))
    return val


def sklearn_mlp(x: np.ndarray, y: np.ndarray, epochs: int, seed: int, pause: Pause = _no_pause) -> None:
    """``MLPRegressor.fit``; ``pause(1)`` after each batch (its per-batch ``_backprop`` wrapped
    on the instance: scikit-learn has no step hook)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor

    model = MLPRegressor(hidden_layer_sizes=WIDTHS, batch_size=BATCH, learning_rate_init=LR, max_iter=epochs, alpha=0.0,
                         tol=0.0, n_iter_no_change=epochs + 1, shuffle=True, random_state=seed)
    if pause is not _no_pause:
        backprop = model._backprop

        def step(*args: Any) -> Any:
            out = backprop(*args)
            pause(1)
            return out

        model._backprop = step  # type: ignore[method-assign]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)


def polytask_fit(prepared: Any, epochs: int, seed: int, pause: Pause = _no_pause) -> None:
    """``pt.fit`` on the prepared problem; ``pause(1)`` after each step (a callback)."""
    import polytask as pt

    callbacks = [] if pause is _no_pause else [_pause_callback(pause)]
    pt.fit(prepared, config=pt.TrainConfig(epochs=epochs, batch_size=BATCH, lr=LR, seed=seed, threads=1),
           callbacks=callbacks)


def _pause_callback(pause: Pause) -> Any:
    """A callback calling ``pause(1)`` at the end of every step."""
    from polytask.training.callbacks import Callback

    class Pauses(Callback):
        def on_step_end(self, trainer: Any, ctx: Any, weights: Any) -> None:
            pause(1)

    return Pauses()


def cli_fit(csv: Path, names: list[str], epochs: int, seed: int, out: Path) -> float:
    """``polytask fit`` in a child process; returns its CPU time (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    args = [sys.executable, "-m", "polytask", "fit", str(csv), *[a for n in names for a in ("-t", n)], "--epochs", str(epochs),
            "--batch-size", str(BATCH), "--lr", str(LR), "--seed", str(seed), "--threads", "1", "--out", str(out), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args, check=True, capture_output=True, env=env, timeout=3600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _cpu(fn: Callable[[], Any]) -> float:
    gc.collect()
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _works(prepared: Any, epochs: int, seed: int) -> dict[str, Work]:
    """The lockstep candidates at one point, each training once from scratch."""
    x, y = _tensors(prepared, "train")
    xv, yv = _tensors(prepared, "val")
    xn, yn = x.numpy(), y.numpy()
    units = steps_of(len(x), epochs)
    runs: dict[str, Callable[[Pause], Any]] = {
        "minimal": lambda pause: minimal_loop(x, y, xv, yv, epochs, seed, pause=pause),
        "minimal (control)": lambda pause: minimal_loop(x, y, xv, yv, epochs, seed, pause=pause),
        "minimal, fused Adam": lambda pause: minimal_loop(x, y, xv, yv, epochs, seed, fused=True, pause=pause),
        "pt.fit": lambda pause: polytask_fit(prepared, epochs, seed, pause),
        "LibMTL step": lambda pause: libmtl_step_loop(x, y, xv, yv, epochs, seed, pause=pause),
        "MLPRegressor": lambda pause: sklearn_mlp(xn, yn, epochs, seed, pause),
    }
    return {label: Work(run, units) for label, run in runs.items()}


def _chosen(labels: list[str], settings: BasicSettings) -> list[str]:
    """``labels`` the settings ask for (the minimal loop always)."""
    if settings.candidates is None:
        return labels
    unknown = set(settings.candidates) - set(labels)
    if unknown:
        raise ValueError(f"unknown basic-path candidate {sorted(unknown)[0]!r} (one of {', '.join(labels)})")
    return [k for k in labels if k == "minimal" or k in settings.candidates]


def lockstep_rounds(make: Callable[[], dict[str, Work]], rounds: int, rng: random.Random,
                    on_round: Callable[[int], Any] | None = None) -> list[dict[str, dict[str, float]]]:
    """``rounds`` lockstep runs of fresh candidates from ``make()``, each in a new shuffled order."""
    out = []
    for r in range(rounds):
        works = list(make().items())
        rng.shuffle(works)
        gc.collect()
        out.append(lockstep(dict(works)))
        if on_round:
            on_round(r + 1)
    return out


def run_point(rows: int, n_tasks: int, settings: BasicSettings, workdir: Path,
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """CPU seconds of every candidate in each round at one (rows, T) point, and the ratios."""
    epochs, seed = settings.epochs_for(rows), settings.seed
    frame, names, prepared = _problem(rows, n_tasks, seed)
    torch.set_num_threads(1)
    labels = _chosen([*_works(prepared, epochs, seed), "CLI (polytask fit)"], settings)
    warm = _problem(min(rows, 2_000), n_tasks, seed)[2]  # first calls pay for imports and allocations
    lockstep({k: w for k, w in _works(warm, 1, seed).items() if k in labels})
    times = lockstep_rounds(lambda: {k: w for k, w in _works(prepared, epochs, seed).items() if k in labels},
                            settings.rounds, random.Random(seed),
                            lambda r: progress and progress(f"basic path rows={rows} T={n_tasks}: round {r}/{settings.rounds}"))
    out = {"rows": rows, "n_tasks": n_tasks, "epochs": epochs, "train_rows": len(prepared.train.x), "timing": "lockstep",
           "candidates": ratios(times, "minimal")}
    if "CLI (polytask fit)" in labels and rows <= settings.cli_max_rows:
        out["candidates"]["CLI (polytask fit)"] = _cli_point(frame, names, prepared, epochs, settings, workdir)
    for c in out["candidates"].values():
        c["vs_minimal"], c["vs_minimal_range"] = c.pop("ratio"), c.pop("range")
        c["per_epoch_s"] = c["median_s"] / epochs
    return out


def _cli_point(frame: Any, names: list[str], prepared: Any, epochs: int, settings: BasicSettings,
               workdir: Path) -> dict[str, Any]:
    """``polytask fit``'s runs, each bracketed by two runs of the minimal loop."""
    x, y = _tensors(prepared, "train")
    xv, yv = _tensors(prepared, "val")
    csv = workdir / f"table_{len(frame)}_{len(names)}.csv"
    frame.to_csv(csv, index=False)
    steps = {"minimal": lambda: _cpu(lambda: minimal_loop(x, y, xv, yv, epochs, settings.seed)),
             "CLI (polytask fit)": lambda: cli_fit(csv, names, epochs, settings.seed, workdir / "model")}
    samples, brackets = bracketed_rounds(steps, "minimal", settings.rounds, random.Random(settings.seed))
    values = samples["CLI (polytask fit)"]
    per_round = [v / m for v, m in zip(values, brackets["CLI (polytask fit)"]) if m > 0]
    return {"cpu_s": values, "median_s": statistics.median(values), "ratios": per_round, "timing": "bracketed",
            "ratio": statistics.median(per_round), "range": [min(per_round), max(per_round)]}


def bracketed_rounds(steps: dict[str, Callable[[], float]], reference: str, rounds: int, rng: random.Random,
                     on_round: Callable[[int], Any] | None = None) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Each step's times over ``rounds`` rounds (each step returns its CPU seconds) and, for each
    time, the mean of the two reference times around it. A round runs the reference, then every
    other step in a new shuffled order, each followed by the reference; the reference's own
    brackets are its neighbours' mean, so its ratios show the noise left after bracketing."""
    samples: dict[str, list[float]] = {k: [] for k in steps}
    brackets: dict[str, list[float]] = {k: [] for k in steps}
    others = [k for k in steps if k != reference]
    for r in range(rounds):
        rng.shuffle(others)
        ref = [steps[reference]()]
        for label in others:
            samples[label].append(steps[label]())
            ref.append(steps[reference]())
            brackets[label].append((ref[-2] + ref[-1]) / 2)
        samples[reference] += ref
        brackets[reference] += ref  # by definition 1.00 against itself
        if on_round:
            on_round(r + 1)
    return samples, brackets


def run_scaling(rows: int, task_counts: tuple[int, int], settings: BasicSettings,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """``pt.fit``'s time at the most tasks over its time at the fewest, at ``rows`` training rows:
    the two in lockstep each round (the same epochs and steps, so this is the ratio of epoch
    times, validation and the final evaluation included), the median and range of the per-round
    ratios."""
    epochs, seed = settings.epochs_for(rows), settings.seed

    def make(rows: int, epochs: int) -> Callable[[], dict[str, Work]]:
        few, many = (_problem(rows, t, seed)[2] for t in task_counts)
        units = steps_of(len(few.train.x), epochs)
        return lambda: {"few": Work(lambda pause: polytask_fit(few, epochs, seed, pause), units),
                        "many": Work(lambda pause: polytask_fit(many, epochs, seed, pause), units)}

    lockstep(make(min(rows, 2_000), 1)())  # first calls pay for imports and allocations
    times = lockstep_rounds(make(rows, epochs), settings.rounds, random.Random(seed),
                            lambda r: progress and progress(f"epoch scaling rows={rows}: round {r}/{settings.rounds}"))
    per_round = ratios(times, "few")["many"]["ratios"]
    return {"rows": rows, "task_counts": list(task_counts), "epochs": epochs, "ratios": per_round, "timing": "lockstep",
            "median": statistics.median(per_round), "range": [min(per_round), max(per_round)]}


def startup_times(repeats: int = 5) -> dict[str, Any]:
    """Wall and CPU seconds of ``polytask --help``, ``--version`` and a usage error (medians)."""
    out: dict[str, Any] = {}
    for label, args in (("--help", ["--help"]), ("--version", ["--version"]), ("usage error", ["fit"])):
        walls, cpus = [], []
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "polytask", *args], capture_output=True, timeout=120)
            walls.append(time.perf_counter() - t0)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
        out[label] = {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus)}
    return out


def targets(points: list[dict[str, Any]], scaling: list[dict[str, Any]], startup: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's basic-path targets, each with its value and verdict."""
    out: list[dict[str, Any]] = []
    for p in points:
        c = p["candidates"]
        where = f"rows={p['rows']:,} T={p['n_tasks']}"
        if "pt.fit" not in c:
            continue
        fit = c["pt.fit"]["vs_minimal"]
        out.append({"target": "pt.fit <= 1.1x the minimal loop", "where": where, "value": fit, "limit": 1.1, "op": "<="})
        if "MLPRegressor" in c:
            mlp = c["MLPRegressor"]["vs_minimal"]
            out.append({"target": "pt.fit not slower than MLPRegressor", "where": where,
                        "value": fit / mlp if fit and mlp else None, "limit": 1.0, "op": "<="})
    for s in scaling:
        lo, hi = s["task_counts"]
        out.append({"target": f"epoch time at T = {hi} <= 1.5x T = {lo}", "where": f"rows={s['rows']:,}",
                    "value": s["median"], "limit": 1.5, "op": "<="})
    if "--help" in startup:
        out.append({"target": "polytask --help under 0.5 s", "where": "wall time", "value": startup["--help"]["wall_s"],
                    "limit": 0.5, "op": "<="})
    for t in out:
        t["met"] = None if t["value"] is None else (t["value"] <= t["limit"])
    return out


def run_basic(settings: BasicSettings, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The basic-path section of the benchmark's JSON."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="polytask-basic-") as tmp:
        points = [run_point(r, t, settings, Path(tmp), progress) for r in settings.rows for t in settings.task_counts]
    counts = (min(settings.task_counts), max(settings.task_counts))
    wanted = settings.candidates is None or "pt.fit" in settings.candidates
    scaling = [run_scaling(r, counts, settings, progress) for r in settings.rows] if counts[0] < counts[1] and wanted else []
    startup = startup_times()
    return {"settings": asdict(settings), "points": points, "scaling": scaling, "startup": startup,
            "targets": targets(points, scaling, startup), "libmtl": libmtl_status(), "seconds": time.perf_counter() - started}
