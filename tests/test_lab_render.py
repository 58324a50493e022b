"""The lab's documents come from its jinja2 templates: the committed documents re-render byte for
byte from their committed data, the templates are package data, and a misspelt name in a
template is an error rather than an empty cell.

If you edit ``benchmarks/notes.md`` or a template, re-render the documents (docs/PERFORMANCE.md:
``python benchmarks/step_time.py --from-json docs/PERFORMANCE.json --out docs/PERFORMANCE.md``;
an experiment's tables: ``result_markdown`` of its JSON) and commit them with the change."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import jinja2
import pytest

from polytask_lab import render as lab_render
from polytask_lab.bench.report import render_markdown
from polytask_lab.experiments.common import result_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_performance_document_re_renders_from_its_json() -> None:
    doc = json.loads((ROOT / "docs" / "PERFORMANCE.json").read_text(encoding="utf-8"))
    notes = (ROOT / "benchmarks" / "notes.md").read_text(encoding="utf-8")
    assert render_markdown(doc, notes) == (ROOT / "docs" / "PERFORMANCE.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("saved", sorted((ROOT / "docs" / "experiments").glob("*.json")), ids=lambda p: p.stem)
def test_experiment_tables_re_render_from_their_json(saved: Path) -> None:
    assert result_markdown(json.loads(saved.read_text(encoding="utf-8"))) == saved.with_suffix(".md").read_text(encoding="utf-8")


def test_every_template_is_package_data() -> None:
    shipped = {p.name for p in files("polytask_lab").joinpath("templates").iterdir()}
    assert {"performance.md.j2", "benchmarks.md.j2", "experiment.md.j2", "experiments.md.j2", "_tables.md.j2"} <= shipped
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'polytask_lab = ["templates/*.md.j2"]' in pyproject  # what puts them into a wheel


def test_a_missing_name_in_a_template_is_an_error() -> None:
    with pytest.raises(jinja2.UndefinedError, match="paired_tests"):
        lab_render.render("experiment.md.j2", saved={"summary": {}})


def test_number_filters() -> None:
    assert (lab_render.fixed(None), lab_render.fixed(1.005, 1), lab_render.fixed(25.0, 0)) == ("–", "1.0", "25")
    assert (lab_render.mark(0.97, ">=", 1.0), lab_render.mark(1.0, "<=", 1.0), lab_render.mark(None, "<=", 1)) == ("0.97 ✗", "1.00 ✓", "–")
    assert (lab_render.sci(3.2e-7), lab_render.sci(None)) == ("3e-07", "–")
    assert (lab_render.sig(0.123456), lab_render.sig(float("nan")), lab_render.sig(None), lab_render.sig(12345.0, 2)) == ("0.1235", "-", "-", "1.2e+04")
    assert (lab_render.thousands(394240), lab_render.percent(0.0123), lab_render.percent(-0.5)) == ("394,240", "+1.23%", "-50.00%")
    header = lab_render.environment().get_template("_tables.md.j2").module.header
    assert str(header(["a", "b"])) == "| a | b |\n| --- | --- |"
