"""The ``polytask`` command line.

Each built-in command lives in its own module under ``polytask.cli`` that defines ``command`` (a
click command); modules are discovered, so adding a command means adding a module. Other
packages add commands through the entry-point group ``polytask.commands`` (name = the command,
value = a click command, e.g. ``polytask_lab.cli.bench:command``); a built-in name wins over a
plugin of the same name. User mistakes (:class:`~polytask.errors.PolytaskError`) print one line,
``error: ...``, on stderr and exit with code 2, without a traceback.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from importlib.metadata import EntryPoint, entry_points

import click

from polytask.version import __version__
from polytask.errors import PolytaskError

#: Modules of ``polytask.cli`` that hold helpers rather than a command.
HELPER_MODULES: frozenset[str] = frozenset({"common", "options", "stream_fit"})

#: The commands that run across processes under torchrun (``WORLD_SIZE`` > 1); the others refuse.
DISTRIBUTED_COMMANDS: frozenset[str] = frozenset({"fit"})

#: The entry-point group of commands that other packages (the lab) add to ``polytask``.
PLUGIN_GROUP = "polytask.commands"


def command_modules() -> list[str]:
    """The command modules of this package, sorted by name."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in HELPER_MODULES)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="polytask")
@click.pass_context
def app(ctx: click.Context) -> None:
    """Multi-task learning: train one network on several targets, compare with single-task
    networks, and predict."""
    check_launch(ctx.invoked_subcommand, os.environ.get("WORLD_SIZE", "1"))


def check_launch(command: str | None, world_size: str) -> None:
    """Under torchrun only the commands of :data:`DISTRIBUTED_COMMANDS` run: any other would
    repeat its whole work, and its writes, in every process."""
    if command is None or command in DISTRIBUTED_COMMANDS or world_size.strip() in ("", "1"):
        return
    raise PolytaskError(f"'polytask {command}' runs in one process, but this is one of {world_size} processes "
                        f"(WORLD_SIZE={world_size}); only 'polytask fit' trains across processes: run '{command}' "
                        "without torchrun")


def plugin_commands() -> list[EntryPoint]:
    """The entry points of :data:`PLUGIN_GROUP`, sorted by name."""
    return sorted(entry_points(group=PLUGIN_GROUP), key=lambda ep: ep.name)


def add_commands(group: click.Group) -> None:
    """The built-in command modules, then the plugin commands whose names are still free."""
    for name in command_modules():
        group.add_command(importlib.import_module(f"polytask.cli.{name}").command)
    for ep in plugin_commands():
        if ep.name in group.commands:
            continue
        try:
            command = ep.load()
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            click.echo(f"warning: cannot load the polytask command '{ep.name}' ({ep.value}): {exc}", err=True)
            continue
        group.add_command(command, name=ep.name)


add_commands(app)


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
