"""Reading, preparing and predicting: polytask's data path against pandas, pyarrow and a bare
network, in process CPU time with one torch thread, and the peak memory per cell of ``fit`` and
``predict``.

Run from the repository root (figures to docs/PERFORMANCE.md through benchmarks/notes.md)::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/data_path.py --rows 200000 --rounds 9 \\
        --memory-rows 1000000 --merge docs/PERFORMANCE.md

(``--merge`` replaces the document's data-path section, see ``polytask_lab.bench.sections``;
``--out FILE`` writes the JSON alone.)

The table: ``--rows`` rows of 40 float features (6 decimals), 2 integer features, one
categorical feature of 8 levels and 5 regression targets (48 columns), written once as CSV and
as Parquet.

Speed, each a ratio of process CPU times measured in the same round (rounds interleave every
row, the order rotating each round; the median and range of the per-round ratios are
reported). Each round brackets a row's candidate by its reference (reference, candidate,
reference) and divides by the mean of the two reference runs, so a drift of the machine's speed
over seconds cancels:

- ``control``: ``pd.read_csv`` against itself (two runs of the reference; should be 1.00);
- ``read_table``: polytask's CSV reader against ``pd.read_csv``;
- ``read + prepare``: ``read_table`` then ``prepare`` (roles, split, preprocessing fitted,
  every row encoded) against ``pd.read_csv`` (target: at most 1.5);
- ``pyarrow``: ``pyarrow.csv.read_csv(...).to_pandas()`` against ``pd.read_csv`` (why the
  reader uses pandas' C parser for CSV);
- ``parquet``: ``read_table`` of the Parquet file against ``pd.read_parquet``;
- ``predict``: the bare network's time over ``FittedModel.predict``'s on the same rows, i.e.
  predict's rows per second as a share of the bare network's (target: at least 0.5). The bare
  network is a forward pass on the already encoded float32 features, whole or in predict's
  batches of 4096, whichever was faster over 3 runs each before the rounds (recorded as
  ``bare``; taking the faster of two runs in every round would bias the reference low).

Memory: each case runs in a fresh subprocess; after its imports and a small warm-up run it
reads the resident set size and resets the kernel's peak mark to it, then runs the case on a
``--memory-rows`` table and reports the peak (``VmHWM``) above that level divided by the cells read (rows x columns of the file): ``pd.read_csv`` alone,
``read_table`` alone, ``fit`` (read, prepare and one epoch of the default network) and
``predict`` (load the model, read, predict).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

TARGETS = [f"y{i}" for i in range(5)]


def make_table(rows: int, seed: int = 0) -> pd.DataFrame:
    """The benchmark table (see the module docstring)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 40))
    frame = pd.DataFrame(x, columns=[f"x{i}" for i in range(40)])
    frame["n0"] = rng.integers(0, 100, rows)
    frame["n1"] = rng.integers(-5, 5, rows)
    frame["kind"] = rng.choice([f"k{i}" for i in range(8)], rows)
    weights = rng.normal(size=(40, 5))
    y = x @ weights + rng.normal(scale=0.5, size=(rows, 5))
    for i, name in enumerate(TARGETS):
        frame[name] = y[:, i]
    return frame


def write_files(frame: pd.DataFrame, directory: Path) -> dict[str, Path]:
    paths = {"csv": directory / "table.csv", "parquet": directory / "table.parquet",
             "predict_csv": directory / "predict.csv"}
    frame.to_csv(paths["csv"], index=False, float_format="%.6f")
    frame.to_parquet(paths["parquet"], index=False)
    frame.drop(columns=TARGETS).to_csv(paths["predict_csv"], index=False, float_format="%.6f")
    return paths


def cpu(fn: Callable[[], Any]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def timed_rounds(paths: dict[str, Path], model: Any, rounds: int) -> dict[str, dict[str, Any]]:
    """Per-round CPU-time ratios of each row against its reference (see the module docstring)."""
    import pyarrow.csv as pcsv
    import torch

    from polytask.data import read_table
    from polytask.data.prepare import prepare
    from polytask.training.trainer import predict_raw

    features = read_table(paths["predict_csv"])
    x = torch.from_numpy(model.preprocessor.transform(features))
    net = model.network.eval()

    def whole() -> None:
        with torch.no_grad():
            net(x)

    variants = {"whole": whole, "batches of 4096": lambda: predict_raw(net, x)}
    bare_name = min(variants, key=lambda k: statistics.median(cpu(variants[k]) for _ in range(3)))
    csv = paths["csv"]
    pairs: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "control": (lambda: pd.read_csv(csv), lambda: pd.read_csv(csv)),
        "read_table": (lambda: read_table(csv), lambda: pd.read_csv(csv)),
        "read + prepare": (lambda: prepare(read_table(csv), TARGETS), lambda: pd.read_csv(csv)),
        "pyarrow": (lambda: pcsv.read_csv(csv).to_pandas(), lambda: pd.read_csv(csv)),
        "parquet": (lambda: read_table(paths["parquet"]), lambda: pd.read_parquet(paths["parquet"])),
        "predict": (lambda: model.predict(features), variants[bare_name]),
    }
    ratios: dict[str, list[float]] = {name: [] for name in pairs}
    names = list(pairs)
    for r in range(rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            candidate, reference = pairs[name]
            before, t_cand, after = cpu(reference), cpu(candidate), cpu(reference)
            t_ref = (before + after) / 2
            ratios[name].append(t_ref / t_cand if name == "predict" else t_cand / t_ref)
    out: dict[str, dict[str, Any]] = {name: {"median": statistics.median(v), "min": min(v), "max": max(v), "rounds": v}
                                      for name, v in ratios.items()}
    out["predict"]["bare"] = bare_name
    return out


# -- memory, in a subprocess per case -------------------------------------------------------------
def memory_case(case: str, directory: Path) -> dict[str, Any]:
    """Run one memory case in this (fresh) process: growth of ``ru_maxrss`` per cell."""
    import torch

    torch.set_num_threads(1)
    import polytask as pt
    from polytask.data import read_table

    warnings.simplefilter("ignore")
    small = make_table(500, seed=1)
    pt.fit(small, TARGETS, config=pt.TrainConfig(epochs=1)).mtl.predict(small)  # warm-up: lazy imports, allocator
    paths = {"csv": directory / "table.csv", "predict_csv": directory / "predict.csv"}
    model = pt.load(directory / "model") if case == "predict" else None
    resident = _resident_bytes()
    high_before = _reset_peak(resident)
    if case == "pd.read_csv":
        frame = pd.read_csv(paths["csv"])
    elif case == "read_table":
        frame = read_table(paths["csv"])
    elif case == "fit":
        frame = read_table(paths["csv"])
        pt.fit(frame, TARGETS, config=pt.TrainConfig(epochs=1))
    elif case == "predict":
        frame = read_table(paths["predict_csv"])
        model.predict(frame)  # type: ignore[union-attr]
    else:
        raise SystemExit(f"unknown memory case {case}")
    peak = _peak_bytes()
    cells = int(frame.shape[0] * frame.shape[1])
    if peak <= high_before:
        raise SystemExit(f"case {case}: its peak stayed below the warm-up's; use more --memory-rows")
    return {"case": case, "peak_growth_bytes": peak - resident, "cells": cells, "bytes_per_cell": (peak - resident) / cells}


def _reset_peak(resident: int) -> int:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS (Linux: ``5`` written
    to ``/proc/self/clear_refs``), so the warm-up's peak does not hide the case's; returns the
    mark the case must exceed (the old peak where the reset is not possible)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return resident
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _peak_bytes() -> int:
    """The peak RSS since the last reset (``VmHWM``), else the process's ``ru_maxrss``."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _resident_bytes() -> int:
    """The resident set size now (Linux), the level a case's peak is measured from."""
    with open("/proc/self/statm", encoding="ascii") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def memory(rows: int) -> list[dict[str, Any]]:
    import polytask as pt

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        frame = make_table(rows, seed=2)
        write_files(frame, directory)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pt.fit(frame.iloc[:20_000], TARGETS, config=pt.TrainConfig(epochs=1)).mtl.save(directory / "model")
        del frame
        for case in ("pd.read_csv", "read_table", "fit", "predict"):
            result = subprocess.run([sys.executable, __file__, "--memory-case", case, "--data", str(directory)],
                                    capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if result.returncode:
                raise SystemExit(result.stderr.strip().splitlines()[-1])
            out.append(json.loads(result.stdout.strip().splitlines()[-1]))
    return out


def machine() -> dict[str, Any]:
    import pyarrow
    import torch

    return {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "pandas": pd.__version__, "pyarrow": pyarrow.__version__,
            "numpy": np.__version__, "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()}


def markdown(doc: dict[str, Any]) -> str:
    """The figures as the tables of the 'Reading, preparing and predicting' notes."""
    lines = [f"Rows: {doc['rows']:,} x 48 columns; {doc['rounds']} interleaved rounds; process CPU time, one torch "
             "thread.", "", "| row | candidate / reference | median | range |", "| --- | --- | --- | --- |"]
    labels = {"control": "pd.read_csv / pd.read_csv", "read_table": "read_table / pd.read_csv",
              "read + prepare": "read_table + prepare / pd.read_csv", "pyarrow": "pyarrow.csv + to_pandas / pd.read_csv",
              "parquet": "read_table / pd.read_parquet", "predict": "bare network time / predict time"}
    for name, r in doc["speed"].items():
        lines.append(f"| {name} | {labels[name]} | {r['median']:.2f} | {r['min']:.2f}-{r['max']:.2f} |")
    if doc.get("memory"):
        lines += ["", f"Peak memory ({doc['memory_rows']:,} rows; peak resident set above the level before the case, "
                  "per cell read):", "",
                  "| case | bytes per cell |", "| --- | --- |"]
        lines += [f"| {m['case']} | {m['bytes_per_cell']:.1f} |" for m in doc["memory"]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--memory-rows", type=int, default=1_000_000, help="0 skips the memory cases")
    parser.add_argument("--out", default=None, help="write the JSON figures here")
    parser.add_argument("--merge", type=Path, default=None,
                        help="merge the figures into this performance document (its .md; the .json must exist)")
    parser.add_argument("--memory-case", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_case:
        print(json.dumps(memory_case(args.memory_case, Path(args.data))))
        return
    import torch

    from polytask_lab.bench.sections import Stamp, merge_section

    stamp = Stamp()
    torch.set_num_threads(1)
    import polytask as pt

    warnings.simplefilter("ignore")
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        frame = make_table(args.rows)
        paths = write_files(frame, Path(tmp))
        model = pt.fit(frame, TARGETS, config=pt.TrainConfig(epochs=1)).mtl
        del frame
        doc: dict[str, Any] = {"rows": args.rows, "rounds": args.rounds, "machine": machine(),
                               "speed": timed_rounds(paths, model, args.rounds)}
    if args.memory_rows:
        doc["memory_rows"] = args.memory_rows
        doc["memory"] = memory(args.memory_rows)
    doc["seconds"] = time.time() - started
    doc["machine"]["load_average_end"] = os.getloadavg()
    print(markdown(doc))
    if args.out:
        Path(args.out).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    if args.merge:
        notes = Path(__file__).with_name("notes.md")
        for written in merge_section(args.merge, "data_path", stamp.finish(doc), notes if notes.is_file() else None):
            print(f"wrote {written}", file=sys.stderr)


if __name__ == "__main__":
    main()
