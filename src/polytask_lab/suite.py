"""The benchmark suite: a pre-registered protocol run through the comparison harness, then
``docs/BENCHMARKS.md`` regenerated from the per-seed values it commits.

The protocol (fixed in this module before the full run):

- **Candidates**: STL, one pre-registered primary MTL candidate per data set (hard parameter
  sharing with equal weights, ``hps + ew``) and per-task gradient boosting (``hgb``). No other
  MTL candidate is tried, so there is nothing to select among on the test rows.
- **Tuning**: the same small grid for STL and MTL (:data:`GRID`), chosen per run on the
  validation rows; gradient boosting picks its number of trees on the same validation rows.
- **Learning curves**: each data set at several pool sizes (rows to build a model from,
  training plus validation); the small pools are disjoint across seeds (independent runs, plain
  paired t-test), the full pool is resampled (runs share rows, Nadeau-Bengio corrected test).
- **Rows**: all rows of Adult (official test set), Yeast (the standard 1,500 / 917 split) and
  the exam data (every school with at least 30 students); solar flare in full.
- **Seeds**: 10 runs per point.
- **Verdicts**: delta-m against STL on the test rows; the p-values of all points and
  candidates of the protocol data sets are Holm-adjusted as one family; a point's
  recommendation (:func:`polytask.compare.summary.recommend`) is made with that suite-wide
  adjustment.

QM9 and MultiMNIST stay in the suite *outside* the protocol (marked in the document): small
subsets for continuity with earlier versions, their own Holm family.

``quick``: tiny subsets, 2 seeds, few epochs (a test runs it end to end).
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

import numpy as np
from rich.console import Console

from polytask import datasets
from polytask.compare.candidates import build_candidates
from polytask.compare.pipeline import run_comparison, write_comparison
from polytask.compare.runner import Problem, RunPlan
from polytask.compare.stats import holm
from polytask.compare.summary import ALPHA, adjust_delta_m, recommend
from polytask.errors import PolytaskError
from polytask.serialization import atomic_write_bytes, atomic_write_json, atomic_write_text, clean_json
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec
from polytask_lab.render import render

#: The pre-registered primary MTL candidate (architecture, balancer).
PRIMARY: tuple[str, str] = ("hps", "ew")
#: The tuning grid of STL and MTL alike.
GRID: tuple[dict[str, Any], ...] = ({"lr": 1e-3}, {"lr": 3e-3})
BASELINES: tuple[str, ...] = ("hgb",)
#: Per data set and point, the summary plus settings (what the document is built from).
ENTRY_FILE = "suite_entry.json"
#: Wall time and process count of the last whole run under ``out`` (read back by ``--render-only``).
RUN_FILE = "suite_run.json"
#: The committed per-seed values (next to the document).
RESULTS_FILE = "benchmarks/results.json"


@dataclass(frozen=True)
class Point:
    """One point of a learning curve: ``pool`` rows per run (None: all non-test rows)."""

    pool: int | None
    scheme: str = "seeds"  # "disjoint" for independent small pools

    @property
    def label(self) -> str:
        return "all rows" if self.pool is None else f"{self.pool} rows"


@dataclass
class Entry:
    """One data set of a suite and how it is compared."""

    dataset: str
    options: dict[str, Any]
    trunk: tuple[int, ...]
    epochs: int
    points: tuple[Point, ...] = (Point(None),)
    batch_size: int = 64
    patience: int = 8
    #: "official" (the loader's test rows), "last:N" (the last N rows), or None (drawn per run).
    test: str | None = "official"
    baseline_options: dict[str, dict[str, Any]] = field(default_factory=lambda: {"hgb": {"max_iter": 150}})
    protocol: bool = True  # False: outside the pre-registered protocol (QM9, MultiMNIST)
    note: str = ""


@dataclass
class Suite:
    name: str
    seeds: int
    entries: list[Entry]


YEAST_NOTE = ("The standard split of the MULAN release (1,500 training and 917 test genes) is taken as the first "
              "1,500 and the last 917 rows of the file river ships (the MULAN/OpenML order); we could not check that "
              "order against MULAN's separate training and test files.")
EXAM_NOTE = "One regression task per school (59 schools with at least 30 students); each row is labelled for one task."
FLARE_NOTE = ("X-class flares are rare (the test RMSE of that task is often near 0), so relative differences on it are "
              "large and weigh on delta-m.")
QM9_NOTE = ("Outside the protocol: a 1,000-molecule subset of QM9's 134k with RDKit 2D descriptors, kept for "
            "continuity; its errors are far above published models and say little about MTL on QM9.")
MNIST_NOTE = ("Outside the protocol: a 1,500-image MultiMNIST subset with an MLP on the flattened pixels (no "
              "convolutional trunk), kept for continuity.")

SUITES: dict[str, Suite] = {
    "quick": Suite("quick", 2, [
        Entry("adult", {"n_train": 400, "n_test": 200}, (8,), 3, (Point(60, "disjoint"), Point(None)),
              baseline_options={"hgb": {"max_iter": 10}}),
        Entry("yeast", {"n_rows": 600}, (8,), 3, test="last:200", baseline_options={"hgb": {"max_iter": 10}},
              note=YEAST_NOTE),
        Entry("solar_flare", {}, (8,), 3, test=None, baseline_options={"hgb": {"max_iter": 10}}),
        Entry("exam", {"min_students": 60, "max_schools": 3}, (8,), 3, test=None,
              baseline_options={"hgb": {"max_iter": 10}}),
        Entry("multimnist", {"n_samples": 200, "pool": 3}, (8,), 2, test=None, protocol=False,
              baseline_options={"hgb": {"max_iter": 5}}, note=MNIST_NOTE),
        Entry("qm9", {"n_molecules": 120, "features": "morgan", "n_bits": 32, "targets": ["mu", "homo"]}, (8,), 2,
              test=None, protocol=False, baseline_options={"hgb": {"max_iter": 5}}, note=QM9_NOTE),
    ]),
    "full": Suite("full", 10, [
        Entry("adult", {}, (64,), 30, (Point(500, "disjoint"), Point(2000, "disjoint"), Point(None)),
              batch_size=256, patience=4, baseline_options={"hgb": {"max_iter": 100}}),
        Entry("yeast", {}, (64,), 60, (Point(150, "disjoint"), Point(None)), test="last:917", note=YEAST_NOTE),
        Entry("exam", {}, (32,), 30, (Point(1000), Point(None)), batch_size=256, patience=5, test=None,
              note=EXAM_NOTE),
        Entry("solar_flare", {}, (32,), 60, test=None, note=FLARE_NOTE),
        Entry("multimnist", {"n_samples": 1500, "pool": 2}, (64,), 20, test=None, patience=4, protocol=False,
              baseline_options={"hgb": {"max_iter": 50}}, note=MNIST_NOTE),
        Entry("qm9", {"n_molecules": 1000, "features": "descriptors"}, (64,), 40, test=None, protocol=False,
              baseline_options={"hgb": {"max_iter": 80}}, note=QM9_NOTE),
    ]),
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


def test_rows(entry: Entry, data: datasets.Dataset) -> np.ndarray | None:
    if entry.test == "official":
        return data.test_rows
    if entry.test and entry.test.startswith("last:"):
        n = int(entry.test.split(":")[1])
        return np.arange(len(data.frame) - n, len(data.frame))
    return None


def run_entry(entry: Entry, suite: Suite, out: Path, console: Console | None, show_progress: bool) -> dict[str, Any]:
    """Load one data set, compare at every point, write its report directories; returns what the
    document needs (summaries per point, loader info, settings, wall and CPU time)."""
    started, cpu = time.perf_counter(), time.process_time()
    data = datasets.load(entry.dataset, **entry.options)
    problem = Problem(data.frame, data.targets, kinds=data.kinds, features=data.features,
                      test_rows=test_rows(entry, data), name=entry.dataset)
    candidates = build_candidates((), (), BASELINES, pairs=[PRIMARY], grid=GRID,
                                  baseline_options=entry.baseline_options)
    spec = NetworkSpec(trunk=entry.trunk)
    config = TrainConfig(epochs=entry.epochs, batch_size=entry.batch_size, patience=entry.patience, val_metrics=False)
    points = {}
    for point in entry.points:
        plan = RunPlan(point.scheme, suite.seeds, pool_size=point.pool)
        comparison = run_comparison(problem, candidates, plan, spec, config, console=console,
                                    show_progress=show_progress)
        summary, _ = write_comparison(comparison, out / entry.dataset / point.label.replace(" ", "_"))
        points[point.label] = summary
    record = {"dataset": entry.dataset, "points": points, "dataset_info": dict(data.info),
              "wall_seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
              "entry": {"options": entry.options, "trunk": list(entry.trunk), "epochs": entry.epochs,
                        "batch_size": entry.batch_size, "patience": entry.patience, "test": entry.test,
                        "points": [[p.pool, p.scheme] for p in entry.points], "protocol": entry.protocol,
                        "note": entry.note}}
    atomic_write_json(out / entry.dataset / ENTRY_FILE, clean_json(record))
    return record


def _entry_job(suite_name: str, dataset: str, out: Path) -> tuple[dict[str, Any] | None, str]:
    """One data set of a suite in a worker process: (record, "") or (None, why it was not run)."""
    entry = next(e for e in SUITES[suite_name].entries if e.dataset == dataset)
    try:
        return run_entry(entry, SUITES[suite_name], out, None, False), ""
    except PolytaskError as exc:
        return None, str(exc)


# -- the committed per-seed values and the suite-wide adjustment --------------------------------
def compact(record: dict[str, Any]) -> dict[str, Any]:
    """What a data set's record commits: per point, rows, scheme, overlap, the test/train ratio
    and, per candidate, the per-seed test and validation delta-m, the per-seed headline metric of
    every task, the grid entries chosen and the recorded p-values."""
    points = {}
    for label, s in record["points"].items():
        cands = {}
        for name, c in s["candidates"].items():
            if "tasks" not in c:
                cands[name] = {"family": c["family"], "note": c.get("note", "")}
                continue
            entry: dict[str, Any] = {"family": c["family"], "arch": c.get("arch"), "balancer": c.get("balancer"),
                                     "name": name, "chosen": c.get("chosen", []),
                                     "headline": {t: c["tasks"][t][m]["values"]
                                                  for t, m in s["problem"]["headline_metrics"].items()},
                                     "headline_mean": {t: c["tasks"][t][m]["mean"]
                                                       for t, m in s["problem"]["headline_metrics"].items()}}
            if "delta_m" in c:
                entry["delta_m"] = {k: c["delta_m"][k] for k in ("values", "mean", "std", "test", "p")}
                entry["val_delta_m"] = {k: c["val_delta_m"][k] for k in ("values", "mean")}
            cands[name] = entry
        points[label] = {"rows": s["problem"]["rows"], "scheme": s["problem"]["scheme"], "runs": s["problem"]["runs"],
                         "overlap": s["problem"]["overlap"], "test_train_ratio": s["problem"]["test_train_ratio"],
                         "corrected": s["settings"]["corrected"], "headline_metrics": s["problem"]["headline_metrics"],
                         "candidates": cands}
    return {"dataset": record["dataset"], "protocol": record["entry"]["protocol"], "entry": record["entry"],
            "dataset_info": record["dataset_info"], "wall_seconds": record["wall_seconds"],
            "cpu_seconds": record.get("cpu_seconds"), "points": points}


def adjust_suite(results: dict[str, dict[str, Any]], alpha: float = ALPHA) -> None:
    """Holm-adjust the delta-m p-values of every (data set, point, candidate) of the protocol
    data sets as one family (and those outside the protocol as another), then set each point's
    verdicts and recommendation from the adjusted values."""
    for protocol in (True, False):
        tested = [c for r in results.values() if r["protocol"] == protocol for p in r["points"].values()
                  for c in p["candidates"].values() if "delta_m" in c]
        for c, adjusted in zip(tested, holm([c["delta_m"]["p"] for c in tested])):
            c["delta_m"]["holm_p"] = adjusted
    for r in results.values():
        for p in r["points"].values():
            for c in p["candidates"].values():
                if "delta_m" in c:
                    dm = c["delta_m"]
                    dm["verdict"] = "no significant difference" if not dm["holm_p"] < alpha else (
                        "significantly better" if dm["mean"] > 0 else "significantly worse")
            view = {"problem": {"runs": p["runs"], "scheme": p["scheme"]},
                    "candidates": {k: v for k, v in p["candidates"].items()}}
            p["recommendation"] = recommend(view, alpha)


def recompute(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The results with every p-value recomputed from the committed per-seed delta-m values
    (what ``tests/test_benchmark_records.py`` compares with the committed file)."""
    from copy import deepcopy

    from polytask.compare.stats import one_sample_test

    out = deepcopy(results)
    for r in out.values():
        for p in r["points"].values():
            for c in p["candidates"].values():
                if "delta_m" in c:
                    t = one_sample_test(c["delta_m"]["values"], p["test_train_ratio"])
                    c["delta_m"]["test"] = t.to_dict()
                    c["delta_m"]["p"] = t.corrected_p_value if p["corrected"] else t.p_value
    adjust_suite(out)
    return clean_json(out)


# -- the document ---------------------------------------------------------------------------------
def curve_png(record: dict[str, Any]) -> bytes:
    """Delta-m against STL (mean and 95 % interval over seeds) by pool size, per candidate."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from scipy import stats

    fig = Figure(figsize=(5.5, 3.6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = list(record["points"])
    names = list(dict.fromkeys(n for p in record["points"].values() for n, c in p["candidates"].items()
                               if "delta_m" in c))
    for k, name in enumerate(names):
        means, errs = [], []
        for label in labels:
            c = record["points"][label]["candidates"].get(name, {})
            v = np.array([x for x in c.get("delta_m", {}).get("values", []) if x is not None], dtype=float) * 100
            means.append(v.mean() if v.size else np.nan)
            errs.append(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else 0.0)
        ax.errorbar(np.arange(len(labels)) + 0.08 * (k - 0.5), means, yerr=errs, marker="o", capsize=3, label=name)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_xlabel("rows per run (training + validation)")
    ax.set_ylabel("test delta-m vs STL (%)")
    ax.set_title(f"{record['dataset']}: mean and 95 % interval over seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def benchmarks_markdown(suite: Suite, results: dict[str, dict[str, Any]], skipped: dict[str, str], command: str,
                        figure_dir: str, total_seconds: float, how: str = "", jobs: int = 1, notes: str = "",
                        run_machine: dict[str, str] | None = None) -> str:
    """docs/BENCHMARKS.md (template ``benchmarks.md.j2``) from the adjusted results."""
    return render("benchmarks.md.j2", suite=suite, results=results, skipped=skipped, command=command, how=how,
                  m=run_machine or machine(), jobs=jobs, total_seconds=total_seconds, figure_dir=figure_dir,
                  summed_cpu=sum(float(r.get("cpu_seconds") or 0.0) for r in results.values()),
                  primary=f"{PRIMARY[0]} + {PRIMARY[1]}", grid=GRID, alpha=ALPHA, notes=notes.strip())


def write_documents(suite: Suite, records: dict[str, dict[str, Any]], skipped: dict[str, str], docs: Path,
                    command: str, total_seconds: float, how: str, jobs: int, notes: str) -> dict[str, dict[str, Any]]:
    """Adjust, commit the per-seed values next to ``docs`` and write the document and figures."""
    results = {name: compact(r) for name, r in records.items()}
    adjust_suite(results)
    figure_dir = docs.parent / "benchmarks"
    for name, r in results.items():
        atomic_write_bytes(figure_dir / f"{name}_curve.png", curve_png(r))
    run_machine = machine()
    atomic_write_json(docs.parent / RESULTS_FILE, clean_json({
        "suite": suite.name, "seeds": suite.seeds, "command": command, "how": how, "jobs": jobs,
        "total_seconds": total_seconds, "machine": run_machine, "skipped": skipped, "results": results}))
    atomic_write_text(docs, benchmarks_markdown(suite, results, skipped, command, os.path.relpath(figure_dir, docs.parent),
                                                total_seconds, how, jobs, notes, run_machine))
    return results


def render_from_results(results_file: Path, docs: Path, notes: str = "") -> str:
    """The document from a committed results file alone (no training): what the test checks."""
    saved = json.loads(results_file.read_text(encoding="utf-8"))
    suite = SUITES[saved["suite"]]
    return benchmarks_markdown(suite, saved["results"], saved["skipped"], saved["command"],
                               os.path.relpath(docs.parent / "benchmarks", docs.parent), saved["total_seconds"],
                               saved["how"], saved["jobs"], notes, saved["machine"])


def run_suite(name: str, out: Path, docs: Path, command: str, only: Sequence[str] | None = None,
              console: Console | None = None, show_progress: bool = True,
              on_done: Callable[[str, dict[str, Any]], None] | None = None, jobs: int = 1,
              how: str = "", notes: str = "") -> dict[str, Any]:
    """Run suite ``name``; per-data-set reports under ``out``, the document at ``docs`` with its
    figures and per-seed values beside it. A data set whose package is missing is listed as not
    run, with the reason. ``jobs > 1`` runs data sets in that many worker processes (spawned, so
    each starts with a clean torch), without progress bars."""
    if name not in SUITES:
        raise PolytaskError(f"unknown suite '{name}' (choose from {', '.join(SUITES)})")
    if jobs < 1:
        raise PolytaskError(f"--jobs must be at least 1, got {jobs}")
    suite = SUITES[name]
    started = time.perf_counter()
    entries = [e for e in suite.entries if not only or e.dataset in only]
    done: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}

    def finished(dataset: str, record: dict[str, Any] | None, why: str) -> None:
        if record is None:
            skipped[dataset] = why
            return
        done[dataset] = record
        if on_done:
            on_done(dataset, record)

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
    seconds = time.perf_counter() - started
    ordered = {e.dataset: done[e.dataset] for e in entries if e.dataset in done}
    results = write_documents(suite, ordered, skipped, docs, command, seconds, how, jobs, notes)
    atomic_write_json(out / RUN_FILE, {"wall_seconds": seconds, "jobs": jobs, "datasets": sorted(done)})
    return {"results": results, "skipped": skipped, "seconds": seconds}


def render_suite_docs(name: str, out: Path, docs: Path, command: str, how: str = "", notes: str = ""
                      ) -> dict[str, Any]:
    """Rebuild the document from the saved per-data-set records under ``out`` (no training):
    merges data sets run as separate processes (``--only``). A data set without saved results is
    listed as not run."""
    if name not in SUITES:
        raise PolytaskError(f"unknown suite '{name}' (choose from {', '.join(SUITES)})")
    suite = SUITES[name]
    records: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    for entry in suite.entries:
        path = out / entry.dataset / ENTRY_FILE
        if not path.is_file():
            skipped[entry.dataset] = f"no saved results in {out / entry.dataset}"
            continue
        records[entry.dataset] = json.loads(path.read_text())
    total, jobs = float(sum(r.get("wall_seconds", 0.0) for r in records.values())), 1
    run_file = out / RUN_FILE
    if run_file.is_file():  # one whole-suite run: its own wall time and process count
        saved = json.loads(run_file.read_text())
        if set(saved.get("datasets", [])) == set(records):
            total, jobs = float(saved["wall_seconds"]), int(saved["jobs"])
    docs.parent.mkdir(parents=True, exist_ok=True)
    results = write_documents(suite, records, skipped, docs, command, total, how, jobs, notes)
    return {"results": results, "skipped": skipped, "seconds": total}
