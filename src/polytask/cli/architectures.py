"""``polytask architectures``: the architectures, their options and what each costs on a problem."""

from __future__ import annotations

from typing import Any

import click

from polytask.cli.common import emit_json, output_options, parse_assignments, parse_widths
from polytask.errors import PolytaskError


def _tasks(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in [t for t in text.split(",") if t.strip()]:
        name, sep, dim = item.partition("=")
        try:
            out[name.strip()] = int(dim) if sep else 1
        except ValueError:
            raise PolytaskError(f"--tasks expects NAME=OUTPUTS pairs such as y1=1,y2=5, got '{item}'") from None
        if out[name.strip()] < 1 or not name.strip():
            raise PolytaskError(f"--tasks expects NAME=OUTPUTS pairs with OUTPUTS >= 1, got '{item}'")
    if not out:
        raise PolytaskError("--tasks names no task")
    return out


@click.command("architectures")
@click.option("--input-shape", default="20", show_default=True, metavar="P|C,H,W",
              help="Features per row, or an image shape such as 3,32,32.")
@click.option("--tasks", "tasks", default="y1=1,y2=1,y3=5", show_default=True, metavar="NAME=OUTPUTS,...",
              help="Tasks and their output sizes (1 for regression or binary, K for K classes).")
@click.option("--trunk", default="64,64", show_default=True, metavar="WIDTHS", help="Widths of one expert / tower / column.")
@click.option("--head-hidden", default="", metavar="WIDTHS", help="Hidden widths of each task head.")
@click.option("--arch-option", "arch_options", multiple=True, metavar="KEY=VALUE",
              help="Option passed to every architecture that accepts it.")
@click.option("--markdown", is_flag=True, help="Print the parameter table as Markdown.")
@output_options
def command(input_shape: str, tasks: str, trunk: str, head_hidden: str, arch_options: tuple[str, ...],
            markdown: bool, as_json: bool, quiet: bool) -> None:
    """List the architectures with their options and parameter counts (shared, per task, and
    the ratio to the single-task baseline) on one problem."""
    from polytask.models import ARCHITECTURES, LayerOptions, specific_options
    from polytask.models.capacity import capacity_table, markdown_capacity_table
    from polytask.settings import declared_options, default_of

    shape = parse_widths(input_shape, "--input-shape")
    if len(shape) not in (1, 3):
        raise PolytaskError(f"--input-shape expects P or C,H,W, got '{input_shape}'")
    common: dict[str, Any] = {"trunk": parse_widths(trunk, "--trunk"), "head_hidden": parse_widths(head_hidden, "--head-hidden"),
                              **parse_assignments(arch_options, "--arch-option")}
    rows = capacity_table(shape[0] if len(shape) == 1 else shape, _tasks(tasks), **common)
    if as_json:
        emit_json({"input_shape": list(shape), "rows": rows})
        return
    if markdown:
        click.echo(markdown_capacity_table(rows))
        return
    if quiet:
        return
    click.echo(markdown_capacity_table(rows))
    click.echo("\noptions (defaults):")
    common = ", ".join(f"{f.name}={default_of(f)!r}" for f, _ in declared_options(LayerOptions))
    click.echo(f"  every architecture: {common}")
    for arch in [a for a in ARCHITECTURES if a != "stl"]:
        own = ", ".join(f"{k}={v!r}" for k, v in specific_options(arch).items()) or "none of its own"
        click.echo(f"  {arch}: {own}")
        click.echo(f"    your modules (Python): {', '.join(getattr(ARCHITECTURES[arch], 'accepts', {})) or 'none'}")
        click.echo(f"    shared representation: {ARCHITECTURES[arch].representation}")
