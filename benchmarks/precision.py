"""bf16 autocast and ``--compile`` against fp32 in one process (``polytask_lab.bench.precision``),
merged into docs/PERFORMANCE.md as its precision section::

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/precision.py --rounds 9
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from polytask_lab.bench.precision import run_precision
from polytask_lab.bench.sections import Stamp, merge_section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", type=Path, default=Path("docs/PERFORMANCE.md"))
    parser.add_argument("--notes", type=Path, default=Path(__file__).with_name("notes.md"))
    args = parser.parse_args(argv)
    stamp = Stamp(None if argv is None else ["benchmarks/precision.py", *argv])
    section = stamp.finish(run_precision(args.rounds))
    for written in merge_section(args.out, "precision", section, args.notes if args.notes.is_file() else None):
        print(f"wrote {written}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
