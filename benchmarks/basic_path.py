"""The basic path alone: ``pt.fit`` and the CLI against a minimal PyTorch loop, LibMTL's step
and scikit-learn's ``MLPRegressor`` (``polytask_lab.bench.basic``), merged into
docs/PERFORMANCE.md as its basic-path section without re-running the step-time benchmark::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/basic_path.py \\
        --rows 10000,100000,1000000 --tasks 2,10,50 --rounds 9 --cli-rows 100000

``polytask bench`` measures the same section as part of a full run (``--basic-*`` options).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from polytask.serialization import atomic_write_text, clean_json
from polytask_lab.bench.basic import BasicSettings, run_basic
from polytask_lab.bench.sections import Stamp, merge_section


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=_ints, default=BasicSettings.rows)
    parser.add_argument("--tasks", type=_ints, default=BasicSettings.task_counts)
    parser.add_argument("--rounds", type=int, default=BasicSettings.rounds)
    parser.add_argument("--cli-rows", type=int, default=BasicSettings.cli_max_rows, help="time the CLI up to this many rows")
    parser.add_argument("--candidates", default=None,
                        help="comma-separated candidates to time besides the minimal loop (default: all)")
    parser.add_argument("--out", type=Path, default=Path("docs/PERFORMANCE.md"))
    parser.add_argument("--json-only", type=Path, default=None,
                        help="write the section's JSON here instead of merging it into --out (a recheck)")
    parser.add_argument("--notes", type=Path, default=Path(__file__).with_name("notes.md"))
    args = parser.parse_args(argv)
    stamp = Stamp(None if argv is None else ["benchmarks/basic_path.py", *argv])
    torch.set_num_threads(1)
    candidates = tuple(c.strip() for c in args.candidates.split(",")) if args.candidates else None
    settings = BasicSettings(rows=args.rows, task_counts=args.tasks, rounds=args.rounds, cli_max_rows=args.cli_rows,
                             candidates=candidates)
    section = run_basic(settings, progress=lambda line: print(line, file=sys.stderr, flush=True))
    if args.json_only is not None:
        atomic_write_text(args.json_only, json.dumps(clean_json(stamp.finish(section)), indent=2) + "\n")
        return 0
    for written in merge_section(args.out, "basic", stamp.finish(section), args.notes if args.notes.is_file() else None):
        print(f"wrote {written}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
