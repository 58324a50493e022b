"""The lab's documents from jinja2 templates (``polytask_lab/templates/*.md.j2``).

One environment: templates from the package, :class:`jinja2.StrictUndefined` (a misspelt name
is an error, never an empty cell), blocks trimmed so that ``{% %}`` lines leave no blank lines,
and the number formats the documents share as filters:

- ``fixed(v, digits=2)``: ``v`` with ``digits`` decimals, ``–`` for a missing value;
- ``mark(v, op, limit)``: ``fixed`` plus ✓ or ✗ for ``v <= limit`` (op ``"<="``) or ``v >= limit``;
- ``sci(v)``: one significant digit in scientific notation (``3e-07``), ``–`` when missing;
- ``sig(v, digits=4)``: ``digits`` significant digits, ``-`` when missing or not finite;
- ``thousands(n)``: an integer with thousands separators;
- ``percent(v)``: a signed percentage with two decimals (``0.0123`` -> ``+1.23%``).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import jinja2


def fixed(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def mark(value: float | None, op: str, limit: float) -> str:
    if value is None:
        return "–"
    ok = value <= limit if op == "<=" else value >= limit
    return f"{value:.2f} {'✓' if ok else '✗'}"


def sci(value: float | None) -> str:
    return "–" if value is None else f"{value:.0e}"


def sig(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}g}"


def thousands(value: int) -> str:
    return f"{value:,}"


def percent(value: float) -> str:
    return f"{100 * value:+.2f}%"


FILTERS = {"fixed": fixed, "mark": mark, "sci": sci, "sig": sig, "thousands": thousands, "percent": percent}


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The lab's one jinja2 environment (built once, on first use)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("polytask_lab", "templates"), undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False)
    env.filters.update(FILTERS)
    return env


def render(template: str, **context: Any) -> str:
    """Template ``template`` (a file name under ``polytask_lab/templates``) filled with ``context``."""
    return environment().get_template(template).render(**context)
