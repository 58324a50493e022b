"""The benchmark suite: every offline data set through the comparison harness, then
``docs/BENCHMARKS.md`` regenerated with every figure, the machine and the command.

``quick``: small subsets, 2 seeds, few epochs (a test runs it). ``full``: larger subsets,
5 seeds, sized for well under 90 minutes on 2 CPU cores. MultiMNIST uses an MLP trunk on the
flattened pixels (the convolutional trunk lives in another module and is not used here).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from polytask import datasets
from polytask.compare import report
from polytask.compare.candidates import build_candidates
from polytask.compare.pipeline import run_comparison, write_comparison
from polytask.compare.runner import Problem, RunPlan
from polytask.errors import PolytaskError
from polytask.serialization import atomic_write_bytes, atomic_write_json, atomic_write_text, clean_json
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec
from polytask_lab.render import percent, render


@dataclass
class Entry:
    """One data set of a suite and how it is compared."""

    dataset: str
    options: dict[str, Any]
    trunk: tuple[int, ...]
    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    patience: int = 15
    baselines: tuple[str, ...] = ("hgb", "linear", "mlp")
    baseline_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    note: str = ""


@dataclass
class Suite:
    name: str
    seeds: int
    entries: list[Entry]
    #: The MTL candidates, as (architecture, balancer) pairs (not a cross product: each costs a full run).
    mtl: tuple[tuple[str, str], ...] = (("hps", "ew"),)


#: Per data set, the summary plus loader info, settings and wall time (what the document is built from).
ENTRY_FILE = "suite_entry.json"
#: Wall time and process count of the last whole run under ``out`` (read back by ``--render-only``).
RUN_FILE = "suite_run.json"
QUICK_BASELINES = {"hgb": {"max_iter": 30}, "mlp": {"max_iter": 50}}
FULL_BASELINES = {"hgb": {"max_iter": 150}, "mlp": {"max_iter": 150}}
#: Cheaper baselines for the data sets added while the shared machine was saturated.
SMALL_BASELINES = {"hgb": {"max_iter": 80}, "mlp": {"max_iter": 120}}
FLARE_NOTE = ("X-class flares are rare (the test RMSE of that task is often near 0), so relative differences on it "
              "are large and dominate delta-m; read the per-task table too.")
QM9_NOTE = ("A 2,500-molecule subset with RDKit 2D descriptors (no 3D geometry), so absolute errors are far above "
            "published graph networks on all of QM9; the comparison between candidates is what this measures.")
MNIST_NOTE = "MLP trunk on flattened 18x18 pixels (no convolutional trunk in this suite)."

#: Full suite MTL candidates: hard sharing with a loss weighting (EW, FAMO) and a gradient
#: aggregator (UPGrad), and two soft-sharing architectures with EW.
FULL_MTL: tuple[tuple[str, str], ...] = (("hps", "ew"), ("hps", "famo"), ("hps", "upgrad"), ("mmoe", "ew"),
                                         ("cgc", "ew"))

SUITES: dict[str, Suite] = {
    "quick": Suite("quick", 2, [
        Entry("yeast", {"n_rows": 800}, (32,), 8, batch_size=64, lr=3e-3, baseline_options=QUICK_BASELINES),
        Entry("solar_flare", {}, (16,), 8, batch_size=128, lr=3e-3, baseline_options=QUICK_BASELINES),
        Entry("exam", {"min_students": 60, "max_schools": 4}, (16,), 8, batch_size=128, lr=3e-3,
              baseline_options=QUICK_BASELINES),
        Entry("adult", {"n_train": 400, "n_test": 200}, (16,), 8, batch_size=64, lr=3e-3,
              baseline_options=QUICK_BASELINES),
        Entry("multimnist", {"n_samples": 300, "pool": 3}, (32,), 8, batch_size=64, lr=3e-3,
              baselines=("linear", "mlp"), baseline_options=QUICK_BASELINES, note=MNIST_NOTE),
        Entry("qm9", {"n_molecules": 150, "features": "morgan", "n_bits": 64, "targets": ["mu", "homo", "lumo"]},
              (16,), 8, batch_size=64, lr=3e-3, baseline_options=QUICK_BASELINES),
    ]),
    "full": Suite("full", 5, [
        Entry("solar_flare", {}, (32, 32), 100, batch_size=64, lr=1e-3, patience=15, note=FLARE_NOTE),
        Entry("qm9", {"n_molecules": 2500, "features": "descriptors"}, (128, 64), 80, batch_size=64, lr=1e-3,
              patience=12, baseline_options=FULL_BASELINES, note=QM9_NOTE),
        Entry("adult", {"n_train": 3000, "n_test": 2000}, (64, 32), 20, batch_size=128, lr=1e-3, patience=5,
              baseline_options=SMALL_BASELINES),
        Entry("multimnist", {"n_samples": 1500, "pool": 2}, (64,), 30, batch_size=64, lr=1e-3, patience=6,
              baseline_options=SMALL_BASELINES, note=MNIST_NOTE),
        Entry("yeast", {"n_rows": 1200}, (32,), 40, batch_size=64, lr=1e-3, patience=8,
              baseline_options=SMALL_BASELINES),
        Entry("exam", {"min_students": 50}, (16,), 40, batch_size=128, lr=1e-3, patience=8,
              baseline_options=SMALL_BASELINES),
    ], mtl=FULL_MTL),
}


def machine() -> dict[str, str]:
    import sklearn
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "torch_threads": str(torch.get_num_threads()),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "scikit-learn": sklearn.__version__,
    }


def run_entry(entry: Entry, suite: Suite, out: Path, console: Console | None, show_progress: bool
              ) -> dict[str, Any]:
    """Load one data set, compare, write its report directory; returns its summary (plus timing)."""
    started = time.perf_counter()
    data = datasets.load(entry.dataset, **entry.options)
    problem = Problem(data.frame, data.targets, kinds=data.kinds, features=data.features,
                      test_rows=data.test_rows, name=entry.dataset)
    candidates = build_candidates((), (), entry.baselines, pairs=suite.mtl,
                                  baseline_options=entry.baseline_options)
    spec = NetworkSpec(trunk=entry.trunk)
    config = TrainConfig(epochs=entry.epochs, batch_size=entry.batch_size, lr=entry.lr, patience=entry.patience)
    comparison = run_comparison(problem, candidates, RunPlan("seeds", suite.seeds), spec, config,
                                console=console, show_progress=show_progress)
    summary, _ = write_comparison(comparison, out / entry.dataset)
    summary["dataset_info"] = {k: v for k, v in data.info.items()}
    summary["wall_seconds"] = time.perf_counter() - started
    summary["entry"] = {"options": entry.options, "trunk": list(entry.trunk), "epochs": entry.epochs,
                        "batch_size": entry.batch_size, "lr": entry.lr, "patience": entry.patience, "note": entry.note}
    atomic_write_json(out / entry.dataset / ENTRY_FILE, clean_json(summary))
    return summary


def benchmarks_markdown(suite: Suite, summaries: dict[str, dict[str, Any]], skipped: dict[str, str],
                        command: str, figure_dir: str, total_seconds: float, how: str = "", jobs: int = 1,
                        notes: str = "") -> str:
    """docs/BENCHMARKS.md (template ``benchmarks.md.j2``): verdicts, the overview, the notes and
    one section per data set with its comparison report."""
    sections = [{"name": name, "info": s["dataset_info"], "entry": s["entry"], "wall_seconds": s["wall_seconds"],
                 "report": report.markdown(s, title=f"{name}: results", heading_level=3,
                                           images={f"{name}: per-task headline metric / STL": f"{figure_dir}/{name}_per_task.png",
                                                   f"{name}: delta-m against STL": f"{figure_dir}/{name}_delta_m.png"})}
                for name, s in summaries.items()]
    return render("benchmarks.md.j2", suite=suite, summaries=summaries, skipped=skipped, command=command, how=how,
                  m=machine(), jobs=jobs, total_seconds=total_seconds,
                  summed_seconds=sum(float(s.get("wall_seconds", 0.0)) for s in summaries.values()),
                  overview=overview(summaries), notes=notes.strip(), sections=sections)


def _entry_job(suite_name: str, dataset: str, out: Path) -> tuple[dict[str, Any] | None, str]:
    """One data set of a suite in a worker process: (summary, "") or (None, why it was not run)."""
    entry = next(e for e in SUITES[suite_name].entries if e.dataset == dataset)
    try:
        return run_entry(entry, SUITES[suite_name], out, None, False), ""
    except PolytaskError as exc:
        return None, str(exc)


def overview(summaries: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The overview table: delta-m against STL of every candidate on every data set, marked
    (+)/(-) where the paired t-test over seeds is significant; None when there is nothing to show."""
    names = list(dict.fromkeys(c for s in summaries.values() for c in s["candidates"] if c != "stl"))
    if not summaries or not names:
        return None

    def cell(s: dict[str, Any], candidate: str) -> str:
        dm = s["candidates"].get(candidate, {}).get("delta_m")
        if not dm or dm.get("mean") is None:
            return "n/a"
        verdict = str(dm.get("verdict", ""))
        mark = " (+)" if verdict.startswith("significantly better") else " (-)" if verdict.startswith(
            "significantly worse") else ""
        return f"{percent(dm['mean'])}{mark}"

    return {"candidates": names, "rows": [{"dataset": d, "cells": [cell(s, c) for c in names]} for d, s in summaries.items()]}


def run_suite(name: str, out: Path, docs: Path, command: str, only: Sequence[str] | None = None,
              console: Console | None = None, show_progress: bool = True,
              on_done: Callable[[str, dict[str, Any]], None] | None = None, jobs: int = 1,
              how: str = "", notes: str = "") -> dict[str, Any]:
    """Run suite ``name``; write per-data-set reports under ``out`` and the Markdown to ``docs``
    (figures in ``docs.parent / 'benchmarks'``). A data set whose package is missing is listed as
    not run, with the reason. The document is rewritten after every data set, so a run cut short
    still leaves what it finished. ``jobs > 1`` runs data sets in that many worker processes
    (spawned, so each starts with a clean torch), in the suite's order, without progress bars."""
    if name not in SUITES:
        raise PolytaskError(f"unknown suite '{name}' (choose from {', '.join(SUITES)})")
    if jobs < 1:
        raise PolytaskError(f"--jobs must be at least 1, got {jobs}")
    suite = SUITES[name]
    started = time.perf_counter()
    figure_dir = docs.parent / "benchmarks"
    entries = [e for e in suite.entries if not only or e.dataset in only]
    done: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}

    def write_document() -> None:
        ordered = {e.dataset: done[e.dataset] for e in entries if e.dataset in done}
        text = benchmarks_markdown(suite, ordered, skipped, command, os.path.relpath(figure_dir, docs.parent),
                                   time.perf_counter() - started, how, jobs, notes)
        atomic_write_text(docs, text)

    def finished(dataset: str, summary: dict[str, Any] | None, why: str) -> None:
        if summary is None:
            skipped[dataset] = why
            return
        done[dataset] = summary
        for kind in ("per_task", "delta_m"):
            atomic_write_bytes(figure_dir / f"{dataset}_{kind}.png", (out / dataset / f"{kind}.png").read_bytes())
        write_document()
        if on_done:
            on_done(dataset, summary)

    if jobs == 1:
        for entry in entries:
            try:
                finished(entry.dataset, run_entry(entry, suite, out, console, show_progress), "")
            except PolytaskError as exc:
                finished(entry.dataset, None, str(exc))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
            futures = {pool.submit(_entry_job, name, e.dataset, out): e.dataset for e in entries}
            for future in as_completed(futures):
                finished(futures[future], *future.result())
    write_document()
    atomic_write_json(out / RUN_FILE, {"wall_seconds": time.perf_counter() - started, "jobs": jobs,
                                       "datasets": sorted(done)})
    return {"summaries": done, "skipped": skipped, "seconds": time.perf_counter() - started}


def render_suite_docs(name: str, out: Path, docs: Path, command: str, how: str = "", notes: str = ""
                      ) -> dict[str, Any]:
    """Rebuild the document from the saved per-data-set results under ``out`` (no training):
    used to merge data sets run as separate processes (``--only``). A data set without saved
    results is listed as not run."""
    if name not in SUITES:
        raise PolytaskError(f"unknown suite '{name}' (choose from {', '.join(SUITES)})")
    suite = SUITES[name]
    figure_dir = docs.parent / "benchmarks"
    summaries: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for entry in suite.entries:
        path = out / entry.dataset / ENTRY_FILE
        if not path.is_file():
            skipped[entry.dataset] = f"no saved results in {out / entry.dataset}"
            continue
        summaries[entry.dataset] = json.loads(path.read_text())
        for kind in ("per_task", "delta_m"):
            atomic_write_bytes(figure_dir / f"{entry.dataset}_{kind}.png", (out / entry.dataset / f"{kind}.png").read_bytes())
    total, jobs = float(sum(s.get("wall_seconds", 0.0) for s in summaries.values())), 1
    run_file = out / RUN_FILE
    if run_file.is_file():  # one whole-suite run: its own wall time and process count
        saved = json.loads(run_file.read_text())
        if set(saved.get("datasets", [])) == set(summaries):
            total, jobs = float(saved["wall_seconds"]), int(saved["jobs"])
    docs.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(docs, benchmarks_markdown(suite, summaries, skipped, command,
                                                os.path.relpath(figure_dir, docs.parent), total, how, jobs, notes))
    return {"summaries": summaries, "skipped": skipped, "seconds": total}
