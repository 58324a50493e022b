"""Step time and peak memory of every balancing method, with the per-task loop and torchjd.

Regenerate docs/PERFORMANCE.md (and docs/PERFORMANCE.json) from the repository root::

    source /work/venv/bin/activate
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/step_time.py --out docs/PERFORMANCE.md

Any option of ``polytask bench`` works here (``--quick``, ``--tasks``, ``--methods``, ...);
``--notes`` defaults to benchmarks/notes.md, the hand-written analysis the report includes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from polytask.cli import main

if __name__ == "__main__":
    args = sys.argv[1:]
    notes = Path(__file__).with_name("notes.md")
    if "--notes" not in args and notes.is_file() and not any(a.startswith("--notes=") for a in args):
        args += ["--notes", str(notes)]
    sys.exit(main(["bench", *args]))
