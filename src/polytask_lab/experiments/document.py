"""docs/EXPERIMENTS.md from the committed results (``docs/experiments/NAME.json``) and the
hand-written reading of each (``benchmarks/experiment_notes/NAME.md``): the notes carry words
only, every number comes from a JSON through the template ``experiments.md.j2``, so the document
is rebuilt from the per-trial records alone (``tests/test_experiment_records.py``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polytask_lab.experiments.claims import CLAIMS
from polytask_lab.render import render

#: The order of the document's sections and their titles.
SECTIONS: dict[str, str] = {
    "inputs-as-outputs": "inputs-as-outputs (Caruana & de Sa 1996; Caruana 1997, section 4.9)",
    "peaks-sharing": "peaks-sharing: what related tasks share (Caruana 1997, section 3.3)",
    "peaks": "peaks: one net for 120 tasks against 120 nets (our own experiment)",
    "horizons": "horizons: one net for several forecast horizons (Caruana 1997, section 4.3)",
    "parity": "parity (Caruana 1997, thesis chapter 1)",
    "amplification": "amplification (statistical data amplification)",
    "attribute-selection": "attribute-selection",
    "eavesdropping": "eavesdropping",
    "representation-bias": "representation-bias",
    "transfer": "transfer: reusing a trained trunk (`polytask fit --init-from DIR`)",
    "grouping": "grouping: does `polytask group` recover clusters? (our own experiment)",
    "grouping-validation": "grouping, the validation run that chose the default affinity",
}


def views(saved: dict[str, Any]) -> dict[str, Any]:
    """The experiment-specific tables of a saved result (empty for the plain arms-and-tests ones)."""
    name = saved["experiment"]
    if name == "inputs-as-outputs":
        from polytask_lab.experiments.inputs_as_outputs import sensitivity_table

        return {"sensitivity": sensitivity_table(saved)}
    if name == "horizons":
        from polytask_lab.experiments.horizons import corrected_horizon_tests, growth_tests

        return {"per_horizon": corrected_horizon_tests(saved), "growth": growth_tests(saved)}
    if name == "grouping":
        return {"sources": [{"source": s, **saved["summary"][s], "exact": saved["extra"]["exact"][s],
                             "free": saved["extra"]["ari_free"][s]} for s in saved["summary"]]}
    return {}


def load_results(directory: Path) -> dict[str, dict[str, Any]]:
    """The saved results of :data:`SECTIONS` found in ``directory`` (by file name: a second record
    of one experiment, such as a validation run, has its own), in the document's order."""
    out = {}
    for name in SECTIONS:
        path = directory / f"{name}.json"
        if path.is_file():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def experiments_markdown(directory: Path, notes_dir: Path) -> str:
    """The document from the results in ``directory`` and the notes in ``notes_dir``."""
    results = load_results(directory)

    def note(name: str) -> str:
        path = notes_dir / f"{name}.md"
        return path.read_text(encoding="utf-8").strip() if path.is_file() else ""

    sections = [{"name": name, "title": SECTIONS[name], "saved": saved, "claims": CLAIMS[saved["experiment"]](saved),
                 "views": views(saved), "notes": note(name)} for name, saved in results.items()]
    return render("experiments.md.j2", sections=sections, intro=note("_intro"))
