"""Regenerate docs/EXPERIMENTS.md from the committed experiment records, or bring records up to
date without training anything.

    PYTHONPATH=src python benchmarks/experiments.py                      # re-render the document
    PYTHONPATH=src python benchmarks/experiments.py --reanalyse NAME ..  # recompute a record's statistics
                                                                         # from its per-trial scores
    PYTHONPATH=src python benchmarks/experiments.py --take DIR NAME ..   # take fresh runs from DIR
                                                                         # (polytask experiment NAME --out DIR);
                                                                         # NAME=STEM keeps it as docs/experiments/STEM

Records live in docs/experiments/ (NAME.json, NAME.md, NAME.png); the hand-written reading of
each experiment in benchmarks/experiment_notes/NAME.md (words only: every number comes from the
records).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from polytask.serialization import atomic_write_text
from polytask_lab.experiments.artifacts import write_saved
from polytask_lab.experiments.common import reanalyse
from polytask_lab.experiments.document import experiments_markdown

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "experiments"
NOTES = ROOT / "benchmarks" / "experiment_notes"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reanalyse", nargs="*", default=(), metavar="NAME")
    parser.add_argument("--take", nargs="+", default=None, metavar=("DIR", "NAME"))
    parser.add_argument("--docs", type=Path, default=ROOT / "docs" / "EXPERIMENTS.md")
    args = parser.parse_args(argv)
    jobs = [(RECORDS, n, n) for n in args.reanalyse]  # (directory, file name, name to keep it under)
    if args.take:
        jobs += [(Path(args.take[0]), n.partition("=")[0], n.partition("=")[2] or n) for n in args.take[1:]]
    for directory, name, stem in jobs:
        saved = reanalyse(json.loads((directory / f"{name}.json").read_text(encoding="utf-8")))
        write_saved(saved, RECORDS, stem)
        print(f"wrote {RECORDS / stem}.json, .md and .png")
    atomic_write_text(args.docs, experiments_markdown(RECORDS, NOTES))
    print(f"wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
