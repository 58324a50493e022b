"""CPU time of one small ``polytask fit`` under two source trees (say, two revisions' ``src``),
interleaved: per round the old tree, the new tree, the old tree again. It reports the median
and range of new / mean(old runs of the round), and a control: the round's second old run over
its first.

    OMP_NUM_THREADS=1 python benchmarks/cli_revisions.py OLD_SRC NEW_SRC [--rows 500] [--rounds 9]

Each run is a child process (``python -m polytask fit`` with ``PYTHONPATH`` set to the tree)
timed by its user + system CPU time, so import and start-up costs count."""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def fit_cpu_seconds(src: str, csv: Path, tasks: list[str]) -> float:
    """CPU time of ``polytask fit`` on ``csv`` (2 epochs, one thread) with ``src`` on the path."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory() as out:
        args = [sys.executable, "-m", "polytask", "fit", str(csv), *[a for t in tasks for a in ("-t", t)],
                "--epochs", "2", "--threads", "1", "--out", str(Path(out) / "model"), "--quiet"]
        env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
        subprocess.run(args, check=True, capture_output=True, env=env, timeout=600)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old_src")
    parser.add_argument("new_src")
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    from polytask.synthetic import related_tasks

    frame, tasks = related_tasks(n_rows=args.rows, n_features=5, n_tasks=2, seed=0)
    with tempfile.TemporaryDirectory() as work:
        csv = Path(work) / "table.csv"
        frame.to_csv(csv, index=False)
        ratios, controls = [], []
        for _ in range(args.rounds):
            first = fit_cpu_seconds(args.old_src, csv, tasks)
            new = fit_cpu_seconds(args.new_src, csv, tasks)
            second = fit_cpu_seconds(args.old_src, csv, tasks)
            ratios.append(new / ((first + second) / 2))
            controls.append(second / first)
    for name, values in (("new / old", ratios), ("control (old / old)", controls)):
        print(f"{name}: median {statistics.median(values):.3f}, range {min(values):.3f}-{max(values):.3f}")


if __name__ == "__main__":
    main()
