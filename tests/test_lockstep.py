"""Lockstep timing (polytask_lab.bench.lockstep): candidates take turns one at a time, the one
furthest behind in its share of work always next, each timed by its own thread's CPU time."""

from __future__ import annotations

import threading

import pytest

from polytask_lab.bench.lockstep import Work, lockstep, ratios


def _recording(label: str, units: int, log: list[tuple[str, int]], running: list[str]) -> Work:
    def run(pause) -> None:  # type: ignore[no-untyped-def]
        for i in range(units):
            running.append(label)
            assert running == [label], f"{running} ran at once"  # only this candidate is running
            log.append((label, i))
            running.remove(label)
            pause(1)

    return Work(run, units)


def test_candidates_run_one_at_a_time_and_keep_the_same_share_of_work_done() -> None:
    """With no CPU time per turn every pause hands over, so the order of units is fixed by the
    rule: next is the candidate with the smallest share done (ties: the earlier one). A candidate
    with twice the units then runs two units for each of the other's."""
    log: list[tuple[str, int]] = []
    running: list[str] = []
    times = lockstep({"long": _recording("long", 8, log, running), "short": _recording("short", 4, log, running)},
                     turn_s=0.0)
    assert set(times) == {"long", "short"} and all(t["cpu_s"] >= 0 for t in times.values())
    assert [label for label, _ in log] == ["long", "short", "long", "long", "short", "long", "long", "short",
                                           "long", "long", "short", "long"]
    done = {"long": 0, "short": 0}
    for label, _ in log:  # the shares done never drift apart by more than one unit of the short one
        done[label] += 1
        assert abs(done["long"] / 8 - done["short"] / 4) <= 1 / 4


def test_a_turn_lasts_until_its_cpu_time_is_used() -> None:
    """With a long turn a candidate runs all its units at once: its pauses do not hand over."""
    log: list[tuple[str, int]] = []
    lockstep({"a": _recording("a", 5, log, []), "b": _recording("b", 5, log, [])}, turn_s=60.0)
    assert [label for label, _ in log] == ["a"] * 5 + ["b"] * 5


def test_each_candidate_is_timed_by_its_own_threads_cpu() -> None:
    """A waiting thread uses no CPU: a candidate that only pauses costs next to nothing however
    long the busy one beside it runs."""
    def busy(pause) -> None:  # type: ignore[no-untyped-def]
        for _ in range(20):
            sum(i * i for i in range(30_000))
            pause(1)

    def idle(pause) -> None:  # type: ignore[no-untyped-def]
        for _ in range(20):
            pause(1)

    times = lockstep({"busy": Work(busy, 20), "idle": Work(idle, 20)}, turn_s=0.0)
    assert times["busy"]["cpu_s"] > 0 and times["idle"]["cpu_s"] < 0.2 * times["busy"]["cpu_s"]
    assert times["idle"]["turns"] >= 10  # it did take its turns in between


def test_a_failing_candidate_raises_after_the_others_finish() -> None:
    finished: list[str] = []

    def broken(pause) -> None:  # type: ignore[no-untyped-def]
        pause(1)
        raise RuntimeError("diverged")

    def fine(pause) -> None:  # type: ignore[no-untyped-def]
        for _ in range(3):
            pause(1)
        finished.append("fine")

    before = threading.active_count()
    with pytest.raises(RuntimeError, match="diverged"):
        lockstep({"broken": Work(broken, 3), "fine": Work(fine, 3)}, turn_s=0.0)
    assert finished == ["fine"] and threading.active_count() == before  # no thread left behind


def test_ratios_are_per_round_medians_against_the_reference() -> None:
    """Hand computation: per-round ratios 2, 3, 1 give the median 2 and the range [1, 3]."""
    rounds = [{"ref": {"cpu_s": 1.0, "turns": 1}, "c": {"cpu_s": 2.0, "turns": 2}},
              {"ref": {"cpu_s": 2.0, "turns": 1}, "c": {"cpu_s": 6.0, "turns": 2}},
              {"ref": {"cpu_s": 4.0, "turns": 1}, "c": {"cpu_s": 4.0, "turns": 2}}]
    out = ratios(rounds, "ref")
    assert out["c"]["ratios"] == [2.0, 3.0, 1.0] and out["c"]["ratio"] == 2.0 and out["c"]["range"] == [1.0, 3.0]
    assert out["c"]["median_s"] == 4.0 and out["ref"]["ratio"] == 1.0 and out["c"]["turns"] == [2, 2, 2]
