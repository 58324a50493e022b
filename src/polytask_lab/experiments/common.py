"""What every experiment shares: the result record, paired tests, the table, JSON and the plot.

An experiment runs ``trials`` seeded trials; in each, every *arm* (STL, MTL, MTL with the
shuffle control, ...) is trained on the same rows and scored on the same test rows, so arms
are compared with paired tests: the paired t-test (scipy ``ttest_rel``) and the Wilcoxon
signed-rank test (scipy ``wilcoxon``) on the per-trial differences.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from polytask.compare.stats import holm
from polytask.serialization import atomic_write_bytes, atomic_write_json, atomic_write_text, clean_json
from polytask_lab.render import render, sig


def ci_half_width(values: Sequence[float]) -> float:
    """Half-width of the 95 % t interval of the mean of ``values`` (NaN for fewer than 2)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return math.nan
    return float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))


def summarize_scores(scores: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Mean, sample sd, 95 % interval half-width and count of each arm's per-trial scores."""
    return {
        arm: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else math.nan,
              "ci": ci_half_width(v), "n": len(v)}
        for arm, v in scores.items()
    }


def paired_test(a: Sequence[float], b: Sequence[float], lower_is_better: bool = True) -> dict[str, float]:
    """Paired comparison of arm ``a`` against arm ``b`` over the same trials.

    ``mean_diff`` is ``mean(a - b)``, ``ci_diff`` the half-width of its 95 % t interval;
    ``wins`` counts trials where ``a`` is better than ``b``.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    out: dict[str, float] = {
        "n": float(len(d)),
        "mean_diff": float(d.mean()) if len(d) else math.nan,
        "sd_diff": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
        "ci_diff": ci_half_width(d),
        "wins": float(np.sum(d < 0) if lower_is_better else np.sum(d > 0)),
        "t_p": math.nan,
        "wilcoxon_p": math.nan,
    }
    if len(d) > 1 and np.any(d != 0):
        out["t_p"] = float(stats.ttest_rel(x, y).pvalue)
        try:
            out["wilcoxon_p"] = float(stats.wilcoxon(x, y).pvalue)
        except ValueError:
            pass
    return out


def paired_tests(scores: dict[str, list[float]], comparisons: Sequence[Sequence[str]], lower_is_better: bool,
                 default_family: str) -> list[dict[str, Any]]:
    """The paired test of every comparison ``(a, b[, family])`` whose arms have scores, with
    ``holm_p``: the t-test p-value Holm-adjusted within its family."""
    out = []
    for c in comparisons:
        a, b = c[0], c[1]
        if a in scores and b in scores:
            family = c[2] if len(c) > 2 else default_family
            out.append({"a": a, "b": b, "family": family, **paired_test(scores[a], scores[b], lower_is_better)})
    for family in dict.fromkeys(t["family"] for t in out):
        members = [t for t in out if t["family"] == family]
        for t, adjusted in zip(members, holm([t["t_p"] for t in members])):
            t["holm_p"] = adjusted
    return out


@dataclass
class ExperimentResult:
    """Per-trial scores of each arm plus the protocol that produced them."""

    name: str
    metric: str
    lower_is_better: bool
    protocol: dict[str, Any]
    scores: dict[str, list[float]] = field(default_factory=dict)
    #: ``(a, b)`` or ``(a, b, family)``: arm a against arm b; Holm adjusts within a family.
    comparisons: list[tuple[str, ...]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    started_cpu: float = field(default_factory=time.process_time)

    def add(self, arm: str, value: float) -> None:
        self.scores.setdefault(arm, []).append(float(value))

    def trial_done(self, trial: int, trials: int, quiet: bool = False) -> None:
        """One progress line on stderr per finished trial (long runs are started in the background)."""
        if not quiet:
            last = {arm: round(v[-1], 4) for arm, v in self.scores.items() if v}
            print(f"{self.name}: trial {trial + 1}/{trials} done at {time.perf_counter() - self.started:.0f} s {last}",
                  file=sys.stderr, flush=True)

    def summary(self) -> dict[str, dict[str, float]]:
        return summarize_scores(self.scores)

    def tests(self) -> list[dict[str, Any]]:
        return paired_tests(self.scores, self.comparisons, self.lower_is_better, self.name)

    def finish(self) -> "ExperimentResult":
        self.seconds = time.perf_counter() - self.started
        self.cpu_seconds = time.process_time() - self.started_cpu
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.name,
            "metric": self.metric,
            "lower_is_better": self.lower_is_better,
            "protocol": self.protocol,
            "summary": self.summary(),
            "comparisons": [list(c) for c in self.comparisons],
            "paired_tests": self.tests(),
            "scores": self.scores,
            "extra": self.extra,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
        }


def reanalyse(saved: dict[str, Any]) -> dict[str, Any]:
    """A saved result with its summary and paired tests recomputed from its per-trial scores
    (what the committed documents are checked against; also brings a record written before a
    statistic was added up to date without training anything)."""
    comparisons = saved.get("comparisons") or [[t["a"], t["b"]] for t in saved["paired_tests"]]
    out = dict(saved)
    out["comparisons"] = [list(c) for c in comparisons]
    out["summary"] = summarize_scores(saved["scores"])
    out["paired_tests"] = paired_tests(saved["scores"], comparisons, saved["lower_is_better"], saved["experiment"])
    return clean_json(out)


def merge_runs(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One record from runs of the same experiment and protocol that differ only in their base
    seed (one run per process, so a long experiment can use several cores): the per-trial scores
    are concatenated in the order given, ``protocol.trials`` is their total, ``protocol.seeds``
    lists the runs' base seeds, and the times are summed; the statistics are recomputed
    (:func:`reanalyse`). A record that is itself a merge counts as its runs (so more trials can
    be added to a committed record later). Records whose ``extra`` holds per-run aggregates
    other than constants cannot be merged this way and are refused."""
    first = runs[0]
    same = ("experiment", "metric", "lower_is_better", "comparisons", "extra")
    per_run = ("seed", "trials", "seeds", "trials_per_seed")
    for run in runs[1:]:
        bare = [{k: v for k, v in r["protocol"].items() if k not in per_run} for r in (first, run)]
        if any(run.get(k) != first.get(k) for k in same) or bare[0] != bare[1] or set(run["scores"]) != set(first["scores"]):
            raise ValueError(f"runs of '{first['experiment']}' differ in more than their seed")
    seeds = [s for r in runs for s in r["protocol"].get("seeds", [r["protocol"]["seed"]])]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"runs of '{first['experiment']}' repeat a base seed: {seeds}")
    trials = [t for r in runs for t in r["protocol"].get("trials_per_seed", [r["protocol"]["trials"]])]
    out = dict(first)
    out["protocol"] = {**first["protocol"], "trials": sum(trials), "seeds": seeds, "trials_per_seed": trials}
    out["scores"] = {arm: [v for r in runs for v in r["scores"][arm]] for arm in first["scores"]}
    out["seconds"] = sum(r["seconds"] for r in runs)
    out["cpu_seconds"] = sum(r.get("cpu_seconds", 0.0) for r in runs)
    return reanalyse(out)


def result_tables(result: ExperimentResult) -> list[Table]:
    """The arms' mean scores and the paired tests, as rich tables."""
    better = "lower" if result.lower_is_better else "higher"
    arms = Table(title=f"{result.name}: {result.metric} ({better} is better)")
    for col in ("arm", "mean", "sd", "trials"):
        arms.add_column(col, justify="right" if col != "arm" else "left")
    for arm, s in result.summary().items():
        arms.add_row(arm, sig(s["mean"]), sig(s["sd"], 2), str(s["n"]))
    tests = Table(title="paired tests (a against b over the same trials)")
    for col in ("a", "b", "mean(a-b)", "a better in", "t-test p", "Wilcoxon p"):
        tests.add_column(col, justify="right" if col not in ("a", "b") else "left")
    for t in result.tests():
        tests.add_row(t["a"], t["b"], sig(t["mean_diff"], 3), f"{int(t['wins'])}/{int(t['n'])}", sig(t["t_p"], 2), sig(t["wilcoxon_p"], 2))
    return [arms, tests]


def result_markdown(saved: dict[str, Any]) -> str:
    """The arms' table and the paired tests, as Markdown, from a result's JSON (``to_dict``)."""
    return render("experiment.md.j2", saved=saved)


def print_result(result: ExperimentResult, console: Console) -> None:
    for table in result_tables(result):
        console.print(table)
    console.print(f"{result.name}: {result.seconds:.1f} s")
