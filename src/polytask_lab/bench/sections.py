"""Sections of the performance document measured by their own, shorter runs.

``docs/PERFORMANCE.json`` holds one ``polytask bench`` run (step times of every balancer and,
unless ``--no-basic``, the basic path). Three sections can be measured on their own and merged
into it: ``basic`` (``benchmarks/basic_path.py``), ``data_path`` (``benchmarks/data_path.py``)
and ``precision`` (``benchmarks/precision.py``). Each carries its own stamp (command, start,
duration, load average, source revision) and replaces the section of the same name; the
document is then rendered again from the merged JSON, so one section can be re-measured without
re-running the others, and the page says which run each figure comes from.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from polytask.errors import PolytaskError
from polytask.serialization import atomic_write_text, clean_json

#: The sections that separate runs may replace.
SECTIONS: tuple[str, ...] = ("basic", "data_path", "precision")


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


class Stamp:
    """Start a section's clock: ``Stamp().finish(section)`` adds the command that ran, its
    start (UTC), its duration, the 1-minute load average at start and end, and the revision."""

    def __init__(self, argv: list[str] | None = None) -> None:
        args = sys.argv if argv is None else argv
        self.command = "OMP_NUM_THREADS=1 PYTHONPATH=src python " + " ".join(shlex.quote(a) for a in args)
        self.started = _dt.datetime.now(_dt.timezone.utc)
        self.clock = time.perf_counter()
        self.load = _load()

    def finish(self, section: dict[str, Any]) -> dict[str, Any]:
        from polytask_lab.bench.suite import git_revision

        return {**section, "run": {"command": self.command, "started_utc": self.started.isoformat(timespec="seconds"),
                                   "seconds": time.perf_counter() - self.clock, "loadavg_start": self.load,
                                   "loadavg_end": _load(), "source_revision": git_revision()}}


def write_document(doc: dict[str, Any], out: Path, notes: Path | None) -> list[str]:
    """``out.md`` rendered from ``doc`` plus the raw JSON beside it (``out.json``); with a
    ``.json`` path, the JSON alone."""
    from polytask_lab.bench.report import render_markdown

    text = json.dumps(clean_json(doc), indent=2) + "\n"
    if out.suffix == ".json":
        atomic_write_text(out, text)
        return [str(out)]
    if out.suffix != ".md":
        raise PolytaskError(f"--out must end in .md or .json, got '{out}'")
    notes_text = notes.read_text(encoding="utf-8") if notes else None
    json_path = out.with_suffix(".json")
    atomic_write_text(json_path, text)
    atomic_write_text(out, render_markdown(doc, notes_text))
    return [str(out), str(json_path)]


def merge_section(out: Path, key: str, section: dict[str, Any], notes: Path | None) -> list[str]:
    """Replace section ``key`` of the document ``out`` (its JSON must exist) and render it again."""
    if key not in SECTIONS:
        raise PolytaskError(f"unknown section '{key}' (one of {', '.join(SECTIONS)})")
    json_path = out.with_suffix(".json")
    try:
        doc = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PolytaskError(f"cannot read the benchmark document '{json_path}' to merge into ({exc}); "
                            "run `polytask bench --out` first") from None
    doc[key] = section
    return write_document(doc, out, notes)
