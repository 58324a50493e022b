"""Run the polytask benchmark suite and regenerate docs/BENCHMARKS.md.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/suite.py quick
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/suite.py full --jobs 2
    # or as separate processes, then merged:
    python benchmarks/suite.py full --only adult & python benchmarks/suite.py full --only yeast exam & ...
    python benchmarks/suite.py full --render-only

With --jobs N, N data sets train at once, each in its own single-threaded process (set
OMP_NUM_THREADS=1 so that they do not fight over cores).

Per-data-set reports (JSON, Markdown, PNG, HTML per point) go to --out (default
benchmark-results/<suite>); the document goes to --docs (default docs/BENCHMARKS.md), its
figures and the per-seed values (benchmarks/results.json) beside it, in docs/benchmarks/.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from polytask_lab.suite import SUITES, render_suite_docs, run_suite


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("suite", choices=sorted(SUITES))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--docs", type=Path, default=Path("docs/BENCHMARKS.md"))
    parser.add_argument("--only", nargs="*", default=None, help="Run only these data sets.")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--render-only", action="store_true",
                        help="Train nothing: rebuild the document from the results saved under --out "
                             "(merges data sets run as separate --only processes).")
    parser.add_argument("--notes", type=Path, default=None,
                        help="Markdown placed after the recommendations (hand-written reading of the figures); "
                             "default benchmarks/suite_notes_<suite>.md when it exists.")
    parser.add_argument("--jobs", type=int, default=1, help="Data sets trained at once, one process each.")
    parser.add_argument("--how", default="", help="A sentence on how and where it was run, for the document.")
    args = parser.parse_args(argv)
    out = args.out or Path("benchmark-results") / args.suite
    command = f"OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/suite.py {args.suite}"
    if args.jobs > 1:
        command += f" --jobs {args.jobs}"
    if args.only:
        command += " --only " + " ".join(args.only)
    console = Console(stderr=True)
    notes_file = args.notes or Path(__file__).with_name(f"suite_notes_{args.suite}.md")
    notes = notes_file.read_text() if notes_file.is_file() else ""
    if args.render_only:
        result = render_suite_docs(args.suite, out, args.docs, command, args.how, notes)
        console.print(f"wrote {args.docs} from {len(result['results'])} saved data sets")
        return 0

    def done(name: str, record: dict) -> None:  # type: ignore[type-arg]
        for label, summary in record["points"].items():
            console.print(f"{name}, {label} (before the suite-wide adjustment): {summary['recommendation']['text']}", markup=False)

    result = run_suite(args.suite, out, args.docs, command, args.only, console, not args.no_progress,
                       on_done=done, jobs=args.jobs, how=args.how, notes=notes)
    for name, why in result["skipped"].items():
        console.print(f"{name}: not run ({why})", markup=False)
    console.print(f"suite '{args.suite}' done in {result['seconds'] / 60:.1f} min; wrote {args.docs}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
