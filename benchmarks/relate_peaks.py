"""Hidden-unit sharing on Caruana's Peaks tasks, by the number of variables two tasks share.

Caruana (1997) reports that in a back-propagation MTL net trained on the Peaks functions, tasks
that share more variables share more hidden units. This script trains one hard-sharing network
on the Peaks tasks (``polytask_lab.experiments.peaks``), measures relatedness with
``polytask.relate.measure_relatedness`` and tabulates, for every pair of tasks, the mean of each
matrix by the number of variables (0..3) the two tasks have in common. For the asymmetric TAG
matrix both directions of a pair count.

    PYTHONPATH=src python benchmarks/relate_peaks.py --out results/relate_peaks

writes ``table.md``, ``table.csv``, ``pairs.csv`` and the relatedness directory; prints the table.
"""

from __future__ import annotations

import argparse
import time
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from polytask_lab.experiments.peaks import peaks_data, peaks_variables
from polytask.relate import measure_relatedness
from polytask.relate.report import write_relatedness
from polytask.serialization import atomic_write_text
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec, prepare


def shared_variables(a: str, b: str) -> int:
    return len(set(peaks_variables(a)) & set(peaks_variables(b)))


def markdown(table: pd.DataFrame) -> str:
    """A pipe table: the index (shared variables), the pair count, then each matrix's mean."""
    cols = list(table.columns)
    lines = ["| shared variables | " + " | ".join(cols) + " |", "|---:|" + "---:|" * len(cols)]
    for idx, row in table.iterrows():
        cells = [str(int(row[c])) if c == "pairs" else f"{row[c]:+.3f}" for c in cols]
        lines.append(f"| {idx} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--tasks", type=int, default=120, help="the first N Peaks tasks (all 120 by default)")
    parser.add_argument("--hidden", type=int, default=64, help="width of the single shared hidden layer")
    parser.add_argument("--activation", default="tanh")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--every", type=int, default=20)
    parser.add_argument("--methods", default="all", help="comma-separated: sharing,cosine,tag or all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("results/relate_peaks"))
    args = parser.parse_args()

    frame, names = peaks_data(args.rows, seed=args.seed)
    names = names[: args.tasks]
    frame = frame[[c for c in frame.columns if not c.startswith("P")] + names]
    started = time.perf_counter()
    prepared = prepare(frame, names, seed=args.seed)
    result = measure_relatedness(
        prepared, args.methods.split(","), every=args.every,
        spec=NetworkSpec(trunk=(args.hidden,), activation=args.activation),
        config=TrainConfig(epochs=args.epochs, batch_size=64, lr=3e-3, patience=args.epochs, seed=args.seed),
    )
    seconds = time.perf_counter() - started
    rows = []
    for a, b in combinations(names, 2):
        row = {"a": a, "b": b, "shared_variables": shared_variables(a, b)}
        for name, matrix in result.matrices.items():
            f = matrix.frame
            row[name] = f.loc[a, b] if matrix.symmetric else (f.loc[a, b] + f.loc[b, a]) / 2
        rows.append(row)
    pairs = pd.DataFrame(rows)
    table = pairs.groupby("shared_variables").agg(
        pairs=("a", "size"), **{m: (m, "mean") for m in result.matrices}
    )
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "pairs.csv", pairs.to_csv(index=False))
    atomic_write_text(args.out / "table.csv", table.to_csv())
    header = (f"{len(names)} Peaks tasks, {args.rows} rows ({len(prepared.train)} training), one hidden layer of "
              f"{args.hidden} {args.activation} units, {result.info['epochs_run']} epochs, seed {args.seed}, "
              f"{seconds:.0f} s\n\n")
    atomic_write_text(args.out / "table.md", header + markdown(table) + "\n")
    write_relatedness(result, args.out / "relatedness")
    print(header + markdown(table))
    val = result.model.summary["val_metrics"] if result.model is not None else {}
    r2 = np.mean([m["r2"] for m in val.values()]) if val else float("nan")
    print(f"mean validation R^2 over tasks: {r2:.3f}")


if __name__ == "__main__":
    main()
