"""A description of every registered balancing method: kind, modes, options and defaults."""

from __future__ import annotations

import inspect
import sys
from typing import Any

from polytask.balancers import REGISTRY, modes, names

GRADIENT = "gradient aggregation"
LOSS = "loss weighting"


def _default(value: Any) -> Any:
    if value is inspect.Parameter.empty:
        return None
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_default(v) for v in value]
    return repr(value)


def _summary(cls: type) -> str:
    doc = inspect.getdoc(sys.modules[cls.__module__]) or inspect.getdoc(cls) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def describe(name: str) -> dict[str, Any]:
    """``{"name", "kind", "modes", "options": {option: default}, "summary"}`` of one method."""
    cls = REGISTRY[name]
    params = inspect.signature(cls.__init__).parameters
    options = {
        k: _default(p.default)
        for k, p in params.items()
        if k != "self" and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
    }
    method_modes = list(modes(name))
    return {
        "name": name,
        "kind": GRADIENT if method_modes else LOSS,
        "modes": method_modes,
        "options": options,
        "summary": _summary(cls),
    }


def catalog() -> list[dict[str, Any]]:
    """Every registered method, loss weighting first, each group by name."""
    rows = [describe(n) for n in names()]
    return sorted(rows, key=lambda r: (r["kind"] != LOSS, r["name"]))
