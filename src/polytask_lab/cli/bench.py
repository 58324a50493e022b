"""``polytask bench``: step time and peak memory of every balancing method against equal
weighting, the per-task loop and torchjd, as ratios measured in one run."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from polytask.cli.common import output_options
from polytask_lab.cli import lab_imports

if TYPE_CHECKING:
    from rich.table import Table

    from polytask_lab.bench.suite import BenchSettings


def _csv(text: str | None, option: str) -> tuple[str, ...] | None:
    from polytask.errors import PolytaskError

    if text is None:
        return None
    items = tuple(v.strip() for v in text.split(",") if v.strip())
    if not items:
        raise PolytaskError(f"{option} expects a comma-separated list, got '{text}'")
    return items


def _ints(text: str | None, option: str) -> tuple[int, ...] | None:
    from polytask.errors import PolytaskError

    items = _csv(text, option)
    if items is None:
        return None
    try:
        return tuple(int(v) for v in items)
    except ValueError:
        raise PolytaskError(f"{option} expects comma-separated integers such as 3,10,30, got '{text}'") from None


def invocation() -> str:
    """The command line that produced this run, to print in the report."""
    argv = sys.argv
    threads = os.environ.get("OMP_NUM_THREADS")
    prefix = f"OMP_NUM_THREADS={threads} " if threads else ""
    if argv and argv[0].endswith(".py"):
        script = argv[0]
        try:
            script = os.path.relpath(script)
        except ValueError:
            pass
        return prefix + "PYTHONPATH=src python " + shlex.join([script, *argv[1:]])
    args = argv[argv.index("bench"):] if "bench" in argv else ["bench"]
    return prefix + "polytask " + shlex.join(args)


def summary_table(doc: dict[str, Any]) -> Table:
    from rich.table import Table

    table = Table(title="polytask bench: ratios measured in the same run")
    for col in ("net", "T", "method", "mode", "÷ EW", "speed-up vs loop", "speed-up vs torchjd", "memory vs loop"):
        table.add_column(col, justify="left" if col in ("net", "method", "mode") else "right")
    for c in doc["comparisons"]:
        def f(v: float | None) -> str:
            return "–" if v is None else f"{v:.2f}"
        table.add_row(c["net"], str(c["n_tasks"]), c["method"], c["mode"] or "–", f(c["vs_ew"]),
                      f(c["speedup_vs_loop"]), f(c["speedup_vs_torchjd"]), f(c["memory_vs_loop"]))
    return table


def write_outputs(doc: dict[str, Any], out: str, notes: str | None) -> list[str]:
    """``.md``: the document plus the raw JSON next to it; ``.json``: the raw JSON only."""
    from polytask_lab.bench.sections import write_document

    return write_document(doc, Path(out), Path(notes) if notes else None)


def _load_json(from_json: str) -> dict[str, Any]:
    import json

    from polytask.errors import PolytaskError

    try:
        doc = json.loads(Path(from_json).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolytaskError(f"cannot read benchmark JSON '{from_json}': {exc}") from None
    if doc.get("schema") is None:
        raise PolytaskError(f"'{from_json}' is not a polytask bench document")
    return doc


def _basic(settings: BenchSettings, basic: dict[str, Any]) -> None:
    """The basic-path options (``--basic-rows``, ``--basic-tasks``, ``--basic-rounds``,
    ``--basic-cli-rows``, ``--no-basic``) applied to ``settings.basic``."""
    from dataclasses import replace

    if basic.get("off"):
        settings.basic = None
        return
    if settings.basic is None:
        return
    changes: dict[str, Any] = {}
    if basic.get("rows") is not None:
        changes["rows"] = _ints(basic["rows"], "--basic-rows")
    if basic.get("tasks") is not None:
        changes["task_counts"] = _ints(basic["tasks"], "--basic-tasks")
    for key in ("rounds", "cli_max_rows"):
        if basic.get(key) is not None:
            changes[key] = basic[key]
    settings.basic = replace(settings.basic, **changes)


def _settings(quick: bool, device: str, no_peers: bool, memory: str | None, lists: dict[str, str | None],
              repeats: int | None, warmup: int | None, batch_size: int | None, mlp_widths: str | None) -> BenchSettings:
    """The benchmark's settings from the command's options (``lists``: the comma-separated ones)."""
    from dataclasses import replace

    from polytask.cli.common import parse_widths
    from polytask.errors import PolytaskError
    from polytask_lab.bench.suite import BenchSettings

    changes: dict[str, Any] = {"device": device, "peers": not no_peers}
    if memory is not None:
        changes["memory"] = memory
    for key, option in (("nets", "--nets"), ("methods", "--methods"), ("modes", "--modes")):
        if lists[key] is not None:
            changes[key] = _csv(lists[key], option)
    if lists["task_counts"] is not None:
        changes["task_counts"] = _ints(lists["task_counts"], "--tasks")
    for key, value in (("repeats", repeats), ("warmup", warmup)):
        if value is not None:
            changes[key] = value
    if repeats is not None:  # an explicit count is the count
        changes["min_repeats"] = repeats
    settings = BenchSettings.quick(**changes) if quick else BenchSettings(**changes)
    if batch_size is not None:
        if batch_size < 1:
            raise PolytaskError(f"--batch-size must be >= 1, got {batch_size}")
        settings.size = replace(settings.size, batch=batch_size)
    if mlp_widths is not None:
        widths = parse_widths(mlp_widths, "--mlp-widths")
        if len(widths) < 2:
            raise PolytaskError(f"--mlp-widths needs the input width and at least one trunk width, got '{mlp_widths}'")
        settings.size = replace(settings.size, mlp_input=widths[0], mlp_trunk=widths[1:])
    return settings


def _measure(settings: BenchSettings, progress: Any) -> dict[str, Any]:
    import time
    import warnings

    from polytask_lab.bench.suite import run_benchmark

    with warnings.catch_warnings():
        # solver chatter (cvxpy's DPP notice, ...) repeated at every step would bury the progress lines
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        return run_benchmark(settings, progress=lambda msg: progress(f"[dim]{time.perf_counter() - started:7.1f}s  {msg}[/]"),
                             command=invocation())


@click.command("bench")
@click.option("--quick", is_flag=True, help="A tiny configuration (smoke test, not figures): seconds for a few "
                                           "--methods, about a minute for all.")
@click.option("--nets", default=None, metavar="NAMES", help="Networks (mlp, conv; default both).")
@click.option("--tasks", "task_counts", default=None, metavar="TS", help="Task counts T (default 3,10,30; quick: 3).")
@click.option("--methods", default=None, metavar="NAMES", help="Methods to measure (default: every registered one; ew always).")
@click.option("--modes", default=None, metavar="MODES", help="Gradient modes (exact, representation; default both).")
@click.option("--repeats", type=int, default=None, help="Timed rounds (median over them); exactly this many when given.")
@click.option("--warmup", type=int, default=None, help="Warm-up rounds.")
@click.option("--batch-size", type=int, default=None, help="Rows per step.")
@click.option("--mlp-widths", default=None, metavar="WIDTHS", help="MLP input and trunk widths, e.g. 512,1024,1024.")
@click.option("--memory", type=click.Choice(["all", "targets", "none"]), default=None,
              help="Peak memory of all candidates, of those judged by memory (EW and exact mode at T = 10, 30; "
                   "the default of full runs) or none. Quick runs measure all.")
@click.option("--no-peers", is_flag=True, help="Measure polytask only (no loop / torchjd peers).")
@click.option("--basic-rows", default=None, metavar="NS", help="Basic path: training-table sizes (default 10000,100000,1000000).")
@click.option("--basic-tasks", default=None, metavar="TS", help="Basic path: task counts (default 2,10,50).")
@click.option("--basic-rounds", type=int, default=None, help="Basic path: interleaved rounds per point.")
@click.option("--basic-cli-rows", type=int, default=None, help="Basic path: time the CLI up to this many rows.")
@click.option("--no-basic", is_flag=True, help="Skip the basic-path section.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--out", default=None, metavar="PATH", help="Write PATH.md (the report, plus PATH.json) or PATH.json.")
@click.option("--notes", default=None, metavar="FILE", help="Hand-written analysis included in the .md report.")
@click.option("--from-json", "from_json", default=None, metavar="FILE", help="Render --out from a saved run instead of measuring.")
@output_options
def command(quick: bool, nets: str | None, task_counts: str | None, methods: str | None, modes: str | None,
            repeats: int | None, warmup: int | None, batch_size: int | None, mlp_widths: str | None, memory: str | None, no_peers: bool,
            basic_rows: str | None, basic_tasks: str | None, basic_rounds: int | None, basic_cli_rows: int | None, no_basic: bool,
            device: str, out: str | None, notes: str | None, from_json: str | None, as_json: bool, quiet: bool) -> None:
    """Measure the step time and peak memory of equal weighting and every balancing method (both
    gradient modes) at several task counts on an MLP and a small conv net, side by side with the
    per-task loop and torchjd; report ratios."""
    from polytask.cli.common import console, emit_json, log_console
    from polytask.errors import PolytaskError

    con = console(quiet or as_json)
    if out is not None and Path(out).suffix not in (".md", ".json"):
        raise PolytaskError(f"--out must end in .md or .json, got '{out}'")
    if notes is not None and not Path(notes).is_file():
        raise PolytaskError(f"notes file '{notes}' does not exist")
    with lab_imports("bench"):
        if from_json is not None:
            doc = _load_json(from_json)
        else:
            lists = {"nets": nets, "task_counts": task_counts, "methods": methods, "modes": modes}
            settings = _settings(quick, device, no_peers, memory, lists, repeats, warmup, batch_size, mlp_widths)
            _basic(settings, {"rows": basic_rows, "tasks": basic_tasks, "rounds": basic_rounds,
                              "cli_max_rows": basic_cli_rows, "off": no_basic})
            doc = _measure(settings, log_console(quiet or as_json).print)
        con.print(summary_table(doc))
        if out is not None:
            for written in write_outputs(doc, out, notes):
                con.print(f"wrote {written}")
    if as_json:
        emit_json(doc)
