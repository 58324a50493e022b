"""Options and helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from polytask.errors import PolytaskError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["clean_json", "console", "emit_json", "output_options", "parse_assignments", "parse_widths"]


def clean_json(obj: Any) -> Any:
    """:func:`polytask.serialization.clean_json` (imported when first needed: it needs torch)."""
    from polytask.serialization import clean_json as clean

    return clean(obj)


def console(quiet: bool = False) -> Console:
    """Human output goes to stderr when ``--json`` owns stdout; ``--quiet`` silences it."""
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def parse_assignments(values: Sequence[str], option: str) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as JSON when they can be)."""
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise PolytaskError(f"{option} expects KEY=VALUE, got '{item}'")
        try:
            out[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.strip()] = raw
    return out


def parse_widths(text: str, option: str) -> tuple[int, ...]:
    """``"64,32"`` -> ``(64, 32)``; an empty string is no layers."""
    text = text.strip()
    if not text:
        return ()
    try:
        widths = tuple(int(w) for w in text.split(","))
    except ValueError:
        raise PolytaskError(f"{option} expects comma-separated integers such as 64,64, got '{text}'") from None
    if any(w < 1 for w in widths):
        raise PolytaskError(f"{option} widths must be positive, got '{text}'")
    return widths


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(clean_json(obj), indent=2) + "\n")


def output_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--json`` and ``--quiet``."""
    fn = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors (and --json output).")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Write machine-readable JSON to stdout.")(fn)
    return fn
