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

from polytask.serialization import atomic_write_bytes, atomic_write_json, atomic_write_text, clean_json
from polytask_lab.render import render, sig


def paired_test(a: Sequence[float], b: Sequence[float], lower_is_better: bool = True) -> dict[str, float]:
    """Paired comparison of arm ``a`` against arm ``b`` over the same trials.

    ``mean_diff`` is ``mean(a - b)``; ``wins`` counts trials where ``a`` is better than ``b``.
    """
    from scipy import stats

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    out: dict[str, float] = {
        "n": float(len(d)),
        "mean_diff": float(d.mean()) if len(d) else math.nan,
        "sd_diff": float(d.std(ddof=1)) if len(d) > 1 else math.nan,
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


@dataclass
class ExperimentResult:
    """Per-trial scores of each arm plus the protocol that produced them."""

    name: str
    metric: str
    lower_is_better: bool
    protocol: dict[str, Any]
    scores: dict[str, list[float]] = field(default_factory=dict)
    comparisons: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    started: float = field(default_factory=time.perf_counter)

    def add(self, arm: str, value: float) -> None:
        self.scores.setdefault(arm, []).append(float(value))

    def trial_done(self, trial: int, trials: int, quiet: bool = False) -> None:
        """One progress line on stderr per finished trial (long runs are started in the background)."""
        if not quiet:
            last = {arm: round(v[-1], 4) for arm, v in self.scores.items() if v}
            print(f"{self.name}: trial {trial + 1}/{trials} done at {time.perf_counter() - self.started:.0f} s {last}",
                  file=sys.stderr, flush=True)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            arm: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)) if len(v) > 1 else math.nan, "n": len(v)}
            for arm, v in self.scores.items()
        }

    def tests(self) -> list[dict[str, Any]]:
        return [
            {"a": a, "b": b, **paired_test(self.scores[a], self.scores[b], self.lower_is_better)}
            for a, b in self.comparisons
            if a in self.scores and b in self.scores
        ]

    def finish(self) -> "ExperimentResult":
        self.seconds = time.perf_counter() - self.started
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.name,
            "metric": self.metric,
            "lower_is_better": self.lower_is_better,
            "protocol": self.protocol,
            "summary": self.summary(),
            "paired_tests": self.tests(),
            "scores": self.scores,
            "extra": self.extra,
            "seconds": self.seconds,
        }


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


def plot_result(result: ExperimentResult, path: Path) -> None:
    """Box plot of each arm's per-trial scores with the trials joined across arms (PNG)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(result.scores)
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(arms), 4.2))
    data = [result.scores[a] for a in arms]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(arms) + 1), arms, rotation=15)
    n = min(len(v) for v in data) if data else 0
    for i in range(n):
        ax.plot(range(1, len(arms) + 1), [v[i] for v in data], color="grey", alpha=0.25, lw=0.8)
    better = "lower" if result.lower_is_better else "higher"
    ax.set_ylabel(f"{result.metric} ({better} is better)")
    ax.set_title(f"{result.name} ({n} trials)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_artifacts(result: ExperimentResult, out: str | Path) -> dict[str, Path]:
    """``<out>/<name>.json``, ``<out>/<name>.png`` and ``<out>/<name>.md`` (the tables)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"{result.name}.{k}" for k in ("json", "png", "md")}
    saved = clean_json(result.to_dict())
    atomic_write_json(paths["json"], saved)
    plot_result(result, paths["png"])
    atomic_write_text(paths["md"], result_markdown(saved))
    return paths


def print_result(result: ExperimentResult, console: Console) -> None:
    for table in result_tables(result):
        console.print(table)
    console.print(f"{result.name}: {result.seconds:.1f} s")
