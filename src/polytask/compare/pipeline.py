"""Run a comparison with a progress display over the whole grid, summarize it and write every
output (JSON, Markdown, PNG, HTML)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from polytask.compare import html, plots, report
from polytask.compare.candidates import Candidate
from polytask.compare.runner import Comparison, Problem, RunPlan, compare
from polytask.compare.summary import summarize
from polytask.training.config import TrainConfig
from polytask.training.progress import Ticker, live_bar, plain_print, stderr_console
from polytask.workflow import NetworkSpec


@contextmanager
def grid_progress(console: Console | None, label: str, enabled: bool = True) -> Iterator[Any]:
    """Progress over every (split, candidate) of a comparison, on ``console`` (default stderr):
    a live bar with an ETA on a terminal, plain lines elsewhere
    (:mod:`polytask.training.progress`); yields the callback the runner calls (or None when
    disabled)."""
    if not enabled:
        yield None
        return
    console = console if console is not None else stderr_console()
    if not console.is_terminal:
        ticker: list[Ticker] = []

        def plain(done: int, total: int, description: str) -> None:
            if not ticker:
                ticker.append(Ticker(total))
            ticker[0].total = total
            if ticker[0].due(done):
                plain_print(console, ticker[0].line(label, done, "run", description))

        yield plain
        return
    with live_bar(console, transient=False) as bar:
        task = bar.add_task(label, total=None, status="")

        def update(done: int, total: int, description: str) -> None:
            bar.update(task, completed=done, total=total, status=description)

        yield update


def run_comparison(
    problem: Problem, candidates: Sequence[Candidate], plan: RunPlan, spec: NetworkSpec, config: TrainConfig,
    match_params: bool = False, console: Console | None = None, show_progress: bool = True,
) -> Comparison:
    with grid_progress(console, problem.name, show_progress) as progress:
        return compare(problem, candidates, plan, spec, config, match_params=match_params, progress=progress)


def write_comparison(comparison: Comparison, out: Path, test: str = "auto",
                     command: str = "") -> tuple[dict[str, Any], dict[str, Path]]:
    """Summarize and write every output; ``command`` is the command line that ran (recorded in
    the summary and the report; empty from Python)."""
    summary = summarize(comparison, test=test)
    summary["command"] = command
    figures = plots.all_plots(summary)
    md = report.markdown(summary, images={name.replace("_", " "): f"{name}.png" for name in figures})
    page = html.render(f"polytask compare: {comparison.problem.name}", md,
                       {name.replace("_", " "): png for name, png in figures.items()})
    paths = report.write_outputs(summary, [r.to_dict() for r in comparison.runs], out, figures, page)
    return summary, paths


def run_and_write(
    problem: Problem, candidates: Sequence[Candidate], plan: RunPlan, spec: NetworkSpec, config: TrainConfig,
    out: Path, match_params: bool = False, test: str = "auto", console: Console | None = None,
    show_progress: bool = True, command: str = "",
) -> tuple[dict[str, Any], dict[str, Path]]:
    comparison = run_comparison(problem, candidates, plan, spec, config, match_params, console, show_progress)
    return write_comparison(comparison, out, test, command)
