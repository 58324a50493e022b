"""Wall time of ``polytask relate --method all`` on 10 tasks and 10,000 rows (default options).

The data is ``synthetic.task_clusters`` (20 features, two clusters of five tasks). The command
runs in a subprocess limited to ``--threads`` threads (OMP_NUM_THREADS, torch intra-op), which
is how "on 2 cores" is measured:

    PYTHONPATH=src python benchmarks/relate_timing.py --threads 2
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from polytask.synthetic import task_clusters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="further options for polytask relate")
    args = parser.parse_args()
    frame, names = task_clusters(args.rows, 20, [list(range(5)), list(range(5, 10))], n_latent=2, noise=0.3, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data.csv"
        frame.to_csv(data, index=False)
        cmd = [sys.executable, "-c", "from polytask.cli import run; run()", "relate", str(data),
               *[a for n in names for a in ("-t", n)], "--method", "all", "--out", str(Path(tmp) / "out"), "--quiet",
               *args.extra]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        load = os.getloadavg()
        started = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        summary = (Path(tmp) / "out" / "summary.txt").read_text().splitlines()[1]
    cpu = usage.ru_utime + usage.ru_stime
    print(f"polytask relate, {len(names)} tasks, {args.rows} rows, {args.threads} threads: {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU (user + system), load average before start {load[0]:.1f}")
    print(summary)


if __name__ == "__main__":
    main()
