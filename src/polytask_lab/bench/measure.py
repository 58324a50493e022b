"""Measuring a training step: lockstep or interleaved timing, and peak tensor memory.

Timing on the CPU (:func:`time_lockstep`): in each round every candidate runs a number of steps
worth about ``round_s`` of CPU, all of them in lockstep (:mod:`polytask_lab.bench.lockstep`:
each in its own thread, one at a time, in 20 ms turns, the one furthest behind in its share of
steps next), each timed by its own thread's CPU time; a round's sample is that time over the
steps. The machine's speed drifts faster than a round lasts, and lockstep makes every candidate
meet the same stretches of it.

Interleaved timing (:func:`time_interleaved`, used on a GPU), in process CPU time on the CPU (``time.process_time``: time the scheduler gives other
processes of a shared machine is not counted; the benchmark runs single-threaded), wall time on a GPU: every candidate is
warmed up, then measured in rounds; each round runs every candidate
once, in a freshly shuffled (seeded) order, so slow drift of a shared machine (other processes,
frequency changes) falls on all candidates alike. Fast steps are repeated within a sample so a
sample lasts at least ``min_sample_s``. The statistic is the median over rounds. The garbage
collector is paused while timing.

Peak memory: extra steps under ``torch.profiler`` with ``profile_memory=True`` (one profiling
session for all candidates, each step in its own ``record_function`` window). Every allocation
and release of tensor storage is an event with a signed byte count; the running sum over a
step's window, in time order, gives the live tensor bytes above the level at the start of the
step, and its maximum is the step's peak. This counts tensor storage only (activations, saved
tensors, Jacobians, gradients, aggregation temporaries made with torch), not memory that numpy
or an external solver allocates itself, nor allocator overhead. On CUDA the CUDA allocator's
peak statistic is used instead.
"""

from __future__ import annotations

import bisect
import gc
import math
import random
import statistics
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import torch

Step = Callable[[], None]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class Timing:
    """Seconds per step: the median and the quartiles of all samples, the samples, and the
    median of each round (for ratios paired round by round, see :func:`paired_ratio`)."""

    median: float
    q1: float
    q3: float
    samples: tuple[float, ...]
    rounds: tuple[float, ...]

    @classmethod
    def of(cls, per_round: list[list[float]]) -> "Timing":
        samples = [x for r in per_round for x in r]
        s = sorted(samples)
        if len(s) >= 4:
            q1, _, q3 = statistics.quantiles(s, n=4)
        else:
            q1, q3 = s[0], s[-1]
        return cls(statistics.median(s), q1, q3, tuple(samples), tuple(statistics.median(r) for r in per_round if r))


def paired_ratio(a: list[float] | tuple[float, ...], b: list[float] | tuple[float, ...]) -> float | None:
    """The median over rounds of ``a[r] / b[r]``: each ratio compares two candidates measured in
    the same round, so a load change between rounds cancels out."""
    ratios = [x / y for x, y in zip(a, b) if y > 0]
    return statistics.median(ratios) if ratios else None


def time_interleaved(
    steps: Mapping[str, Step],
    warmup: int,
    repeats: int,
    min_sample_s: float,
    seed: int = 0,
    device: torch.device | None = None,
    max_inner: int = 50,
    min_repeats: int = 3,
    budget_s: float | None = None,
    estimates: Mapping[str, float] | None = None,
    sample_target_s: float = 0.1,
    max_samples_per_round: int = 5,
) -> dict[str, Timing]:
    """Median step time of each candidate, measured in interleaved, shuffled rounds.

    ``warmup`` untimed rounds come first (0 when the caller has warmed the steps up already;
    ``estimates`` then gives each step's approximate duration for choosing the repetitions per
    sample). At most ``repeats`` rounds are timed; once ``min_repeats`` are done, no new round
    starts that would end after ``budget_s`` seconds of timing. Within a round, a step faster
    than ``sample_target_s`` gives several samples (up to ``max_samples_per_round``), so the
    cheap steps whose ratios are judged most finely (EW, loss weighting) get the most samples.
    """
    device = device or torch.device("cpu")
    clock = time.process_time if device.type == "cpu" else time.perf_counter  # a GPU's time is wall time
    labels = list(steps)
    rng = random.Random(seed)
    estimate = dict(estimates or {})
    samples: dict[str, list[list[float]]] = {k: [] for k in labels}
    gc.collect(1)  # young generations only: a full pass over torch's heap costs ~1 s and changes nothing here
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(warmup):
            order = labels[:]
            rng.shuffle(order)
            for k in order:
                _sync(device)
                t0 = clock()
                steps[k]()
                _sync(device)
                estimate[k] = clock() - t0
        inner = {k: max(1, min(max_inner, math.ceil(min_sample_s / max(estimate.get(k, min_sample_s), 1e-9)))) for k in labels}
        per_round = {
            k: max(1, min(max_samples_per_round, int(sample_target_s // max(estimate.get(k, sample_target_s) * inner[k], 1e-9))))
            for k in labels
        }
        started = clock()
        for r in range(repeats):
            if budget_s is not None and r >= min_repeats:
                spent = clock() - started
                if spent + spent / r > budget_s:
                    break
            order = labels[:]
            rng.shuffle(order)
            for k in order:
                samples[k].append([])
                for _ in range(per_round[k]):
                    _sync(device)
                    t0 = clock()
                    for _ in range(inner[k]):
                        steps[k]()
                    _sync(device)
                    samples[k][-1].append((clock() - t0) / inner[k])
    finally:
        if was_enabled:
            gc.enable()
    return {k: Timing.of(v) for k, v in samples.items()}


def time_lockstep(
    steps: Mapping[str, Step],
    repeats: int,
    estimates: Mapping[str, float],
    round_s: float = 0.2,
    seed: int = 0,
    warmup: int = 0,
    min_repeats: int = 3,
    budget_s: float | None = None,
    turn_s: float | None = None,
    calibrate: bool = True,
    max_units: int = 5000,
) -> dict[str, Timing]:
    """Seconds per step of each candidate, from ``repeats`` rounds of lockstep timing (see the
    module docstring); the order of the candidates is shuffled each round (it decides only who
    starts a tie).

    ``estimates`` gives each step's approximate duration: a candidate takes
    ``ceil(round_s / estimate)`` steps a round (at least one, at most ``max_units``). A first
    step is a poor estimate (it pays one-time costs: a conv net's first call builds its
    kernels), and a candidate given too few steps has its per-round overhead spread over too
    few of them; so with ``calibrate`` one untimed lockstep round runs first and its measured
    seconds per step set the steps per round. ``warmup`` more untimed rounds follow. Once ``min_repeats`` rounds are done, no new round starts that would end after
    ``budget_s`` CPU seconds of timing. Each round gives every candidate one sample, so its
    :attr:`Timing.rounds` are its samples and ratios pair by round. ``turn_s``: the lockstep
    turn (None: :data:`polytask_lab.bench.lockstep.TURN_S`).
    """
    from polytask_lab.bench.lockstep import TURN_S, Work, lockstep

    labels = list(steps)
    rng = random.Random(seed)
    def units_for(seconds: Mapping[str, float]) -> dict[str, int]:
        return {k: max(1, min(max_units, math.ceil(round_s / max(seconds.get(k, round_s), 1e-9)))) for k in labels}

    units = units_for(estimates)

    def work(step: Step, n: int) -> Work:
        def run(pause: Callable[[int], None]) -> None:
            for _ in range(n):
                step()
                pause(1)
        return Work(run, n)

    samples: dict[str, list[list[float]]] = {k: [] for k in labels}
    gc.collect(1)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if calibrate:
            times = lockstep({k: work(steps[k], units[k]) for k in labels}, TURN_S if turn_s is None else turn_s)
            units = units_for({k: times[k]["cpu_s"] / units[k] for k in labels})
        spent = 0.0
        for r in range(warmup + repeats):
            timed = r - warmup
            if budget_s is not None and timed >= min_repeats and spent + spent / timed > budget_s:
                break
            order = labels[:]
            rng.shuffle(order)
            times = lockstep({k: work(steps[k], units[k]) for k in order}, TURN_S if turn_s is None else turn_s)
            if timed < 0:
                continue
            spent += sum(t["cpu_s"] for t in times.values())
            for k in labels:
                samples[k].append([times[k]["cpu_s"] / units[k]])
    finally:
        if was_enabled:
            gc.enable()
    return {k: Timing.of(v) for k, v in samples.items()}


@dataclass
class MemoryPass:
    """Peak bytes per step, the error of any step that raised, and each step's last duration
    (under the profiler: a rough estimate only)."""

    peaks: dict[str, int]
    errors: dict[str, str]
    seconds: dict[str, float]


def peak_step_bytes(
    steps: Mapping[str, Step],
    before: Mapping[str, Callable[[], None]] | None = None,
    device: torch.device | None = None,
    runs: int = 1,
    profile_memory: bool = True,
    after: Mapping[str, Callable[[], None]] | None = None,
    profiled: Collection[str] | None = None,
) -> MemoryPass:
    """Peak live tensor bytes during one call of each step, above the level at its start.

    On CPU, one profiling session covers every step (starting the profiler costs far more than
    a step): each step runs ``runs`` times inside its own ``record_function`` window, after its
    ``before`` hook (e.g. ``zero_grad(set_to_none=True)``, so gradients left by the previous
    step are released outside the window) and before its ``after`` hook. The last run's window
    gives the figure. Tensors allocated before the session and released inside a window leave no
    record, so whatever a step replaces from an earlier one (gradients) must be released in
    ``before``. A step that raises is reported in ``errors`` and left out. With
    ``profile_memory=False`` the steps just run (warm-up only); with ``profiled``, only those
    labels are measured (the profiler's bookkeeping costs seconds per hundred steps), the others
    run before the session.
    """
    device = device or torch.device("cpu")
    before = before or {}
    after = after or {}
    peaks: dict[str, int] = {}
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}

    def run(label: str, step: Step, window: str | None) -> None:
        if label in errors:
            return
        if label in before:
            before[label]()
        _sync(device)
        t0 = time.perf_counter()
        try:
            if window is None:
                step()
            else:
                from torch.profiler import record_function

                with record_function(window):
                    step()
        except Exception as exc:  # noqa: BLE001 - one failing method must not stop the run
            errors[label] = f"{type(exc).__name__}: {exc}"
        _sync(device)
        seconds[label] = time.perf_counter() - t0
        if label not in errors and label in after:
            after[label]()

    gc.collect(1)  # young generations only: a full pass over torch's heap costs ~1 s and changes nothing here
    if not profile_memory:
        for label, step in steps.items():
            for _ in range(runs):
                run(label, step, None)
        return MemoryPass(peaks, errors, seconds)
    if device.type == "cuda":
        for label, step in steps.items():
            for _ in range(runs):
                start = torch.cuda.memory_allocated(device)
                torch.cuda.reset_peak_memory_stats(device)
                run(label, step, None)
                peaks[label] = int(torch.cuda.max_memory_allocated(device) - start)
        return MemoryPass({k: v for k, v in peaks.items() if k not in errors}, errors, seconds)
    from torch.profiler import ProfilerActivity, profile

    measured = [k for k in steps if profiled is None or k in profiled]
    for label, step in steps.items():
        if label not in measured:
            for _ in range(runs):
                run(label, step, None)
    if not measured:
        return MemoryPass(peaks, errors, seconds)
    windows: dict[str, str] = {}
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        for i, label in enumerate(measured):
            for r in range(runs):
                windows[label] = f"polytask_bench_window_{i}_{r}"
                run(label, steps[label], windows[label])
    events = list(prof.profiler.kineto_results.events())  # type: ignore[union-attr]
    spans = {e.name(): (e.start_ns(), e.start_ns() + e.duration_ns()) for e in events if e.name().startswith("polytask_bench_window_")}
    changes = sorted((e.start_ns(), i, e.nbytes()) for i, e in enumerate(events) if e.name() == "[memory]")
    stamps = [c[0] for c in changes]
    for label, name in windows.items():
        if label in errors or name not in spans:
            continue
        lo, hi = spans[name]
        live = peak = 0
        for _, _, nbytes in changes[bisect.bisect_left(stamps, lo) : bisect.bisect_right(stamps, hi)]:
            live += nbytes
            peak = max(peak, live)
        peaks[label] = int(peak)
    return MemoryPass(peaks, errors, seconds)
