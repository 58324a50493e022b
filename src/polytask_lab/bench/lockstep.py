"""Candidates timed in lockstep: one at a time, in turns of a few milliseconds, so that each one
runs the same share of its work in every stretch of the run.

This machine's speed drifts on every time scale: the same 10 ms of work differs by about 9 %
(sd of the log ratio) from the next 10 ms and by about 22 % from work a few seconds away.
Timing whole trainings one after another therefore compares candidates run at different speeds;
bracketing each by the reference only halves that. Here every candidate is a thread that does
its own work and calls ``pause(units)`` after each unit (a training step); once its turn has
used :data:`TURN_S` of its thread's CPU time it hands over. The scheduler always resumes the
candidate that is furthest behind in *progress*, the share of its units done, so at any moment
all candidates have done about the same share of their work, whatever their speed: a slow
stretch of the machine falls on every candidate in proportion to its own cost, and cancels in
the ratio of their times.

A candidate's time is its own thread's CPU time (``time.thread_time``): with one torch thread
every operation, the backward pass included, runs on the calling thread, and a waiting thread
uses none. Work a candidate does after its last pause (a final evaluation) runs when the others
are done, unmatched; it is a few per cent of a training.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

#: CPU seconds a candidate runs before it hands over.
TURN_S = 0.02

Pause = Callable[[int], None]


@dataclass
class Work:
    """A candidate: ``run(pause)`` does its whole job, calling ``pause(k)`` after each ``k``
    units of it; ``units`` is how many there are in all."""

    run: Callable[[Pause], Any]
    units: int


class _Turns:
    """One candidate's thread and the hand-over between it and the scheduler."""

    def __init__(self, work: Work, turn_s: float) -> None:
        self.work, self.turn_s = work, turn_s
        self.done, self.cpu, self.finished, self.turns = 0, 0.0, False, 0
        self.error: BaseException | None = None
        self._go, self._back = threading.Event(), threading.Event()
        self._turn_start = 0.0
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()

    @property
    def progress(self) -> float:
        return min(self.done / max(self.work.units, 1), 1.0)

    def _main(self) -> None:
        self._wait()
        start = time.thread_time()
        try:
            self.work.run(self.pause)
        except BaseException as exc:  # noqa: BLE001 - handed to the scheduler's thread
            self.error = exc
        self.cpu = time.thread_time() - start
        self.finished = True
        self._back.set()

    def _wait(self) -> None:
        self._go.wait()
        self._go.clear()
        self._turn_start = time.thread_time()

    def pause(self, units: int = 1) -> None:
        """Count ``units`` done; hand over once this turn has used its CPU time."""
        self.done += units
        if time.thread_time() - self._turn_start >= self.turn_s:
            self._back.set()
            self._wait()

    def turn(self) -> None:
        """Let the candidate run until it hands over or finishes (called by the scheduler)."""
        self.turns += 1
        self._back.clear()
        self._go.set()
        self._back.wait()

    def join(self) -> None:
        self._thread.join()


def lockstep(works: dict[str, Work], turn_s: float = TURN_S) -> dict[str, dict[str, float]]:
    """Run ``works`` in lockstep (see the module docstring); each one's CPU seconds and turns.
    Ties in progress go to the earlier candidate in ``works``' order."""
    runners = {label: _Turns(work, turn_s) for label, work in works.items()}
    order = list(runners)
    while active := [label for label in order if not runners[label].finished]:
        behind = min(active, key=lambda label: (runners[label].progress, order.index(label)))
        runners[behind].turn()
    for r in runners.values():
        r.join()
    failed = next((r.error for r in runners.values() if r.error is not None), None)
    if failed is not None:
        raise failed
    return {label: {"cpu_s": r.cpu, "turns": r.turns} for label, r in runners.items()}


def ratios(times: Sequence[dict[str, dict[str, float]]], reference: str) -> dict[str, dict[str, Any]]:
    """Per candidate over lockstep rounds ``times``: its CPU seconds in each round (and their
    median), its per-round ratios to ``reference``, their median (``ratio``) and range."""
    out: dict[str, dict[str, Any]] = {}
    for label in times[0]:
        cpu = [t[label]["cpu_s"] for t in times]
        per_round = [t[label]["cpu_s"] / t[reference]["cpu_s"] for t in times if t[reference]["cpu_s"] > 0]
        out[label] = {"cpu_s": cpu, "median_s": median(cpu), "ratios": per_round,
                      "ratio": median(per_round) if per_round else None,
                      "range": [min(per_round), max(per_round)] if per_round else None,
                      "turns": [t[label]["turns"] for t in times]}
    return out
