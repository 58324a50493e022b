"""Options and helpers shared by the commands.

Where output goes: results (tables, verdicts, what was written) on **stdout**, so that
``polytask fit ... > results.txt`` keeps them; progress, logs and warnings on **stderr**.
``--json`` gives stdout to the JSON alone (the human results and the progress are then not
printed; warnings still go to stderr, and are in the JSON); ``--quiet`` prints nothing but
errors and the JSON.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from polytask.errors import PolytaskError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["clean_json", "console", "emit_json", "log_console", "output_options", "parse_assignments",
           "parse_widths", "print_warnings", "invocation"]

#: Width of tables written to a file or a pipe (rich would otherwise fold them at 80 columns).
FILE_WIDTH = 120


def clean_json(obj: Any) -> Any:
    """:func:`polytask.serialization.clean_json` (imported when first needed: it needs torch)."""
    from polytask.serialization import clean_json as clean

    return clean(obj)


def console(quiet: bool = False) -> Console:
    """The results console, on stdout; pass ``quiet or as_json`` (under ``--json`` the JSON owns
    stdout). Tables keep a readable width when stdout is a file or a pipe."""
    from rich.console import Console

    con = Console(quiet=quiet, soft_wrap=True)
    if not con.is_terminal and "COLUMNS" not in os.environ:
        con.width = FILE_WIDTH
    return con


def log_console(quiet: bool = False) -> Console:
    """Progress, logs and warnings, on stderr; pass ``quiet``."""
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def print_warnings(messages: Sequence[str], quiet: bool = False) -> None:
    """One line per warning on stderr (``warning: ...``), unless ``--quiet``."""
    if quiet:
        return
    for message in messages:
        click.echo(f"warning: {message}", err=True)


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


def invocation(ctx: Any = None) -> str:
    """The ``polytask`` command that ran, rebuilt from click's context (what was given on the
    command line, in a canonical order; defaults left out), or ``""`` outside a command."""
    ctx = ctx or click.get_current_context(silent=True)
    if ctx is None:
        return ""
    words = ctx.command_path.split()
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")
        if source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = ctx.params.get(param.name or "")
        if isinstance(param, click.Argument):
            words.append(str(value))
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words.append(flag if value else (max(param.secondary_opts, key=len) if param.secondary_opts else ""))
        elif getattr(param, "multiple", False):
            for item in value or ():
                words += [flag, str(item)]
        else:
            words += [flag, str(value)]
    return shlex.join([w for w in words if w])
