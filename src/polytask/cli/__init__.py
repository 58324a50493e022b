"""The ``polytask`` command line.

Each command lives in its own module under ``polytask.cli`` that defines ``command`` (a click
command); modules are discovered, so adding a command means adding a module. User mistakes (:class:`~polytask.errors.PolytaskError`) print one line,
``error: ...``, on stderr and exit with code 2, without a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import click

from polytask.version import __version__
from polytask.errors import PolytaskError

#: Modules of ``polytask.cli`` that hold helpers rather than a command.
HELPER_MODULES: frozenset[str] = frozenset({"common", "options"})


def command_modules() -> list[str]:
    """The command modules of this package, sorted by name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in HELPER_MODULES)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="polytask")
def app() -> None:
    """Multi-task learning: train one network on several targets, compare with single-task
    networks, and predict."""


for _name in command_modules():
    app.add_command(importlib.import_module(f"polytask.cli.{_name}").command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        app.main(args=argv, prog_name="polytask", standalone_mode=False)
    except PolytaskError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    return 0


def run() -> None:
    sys.exit(main())
