"""``polytask balancers``: the task-balancing methods usable with ``fit --balancer NAME``."""

from __future__ import annotations

import click

from polytask.cli.common import console, emit_json, output_options


@click.command("balancers")
@output_options
def command(as_json: bool, quiet: bool) -> None:
    """List every balancing method with its kind, modes and options (with defaults).

    Gradient-aggregation methods take ``--balancer-option mode=exact`` (per-task gradients of the
    shared parameters, the default) or ``mode=representation`` (gradients of the shared
    representation, the "UB" variant), where listed.
    """
    from rich.table import Table
    from polytask.balancers.catalog import catalog

    rows = catalog()
    table = Table(title="balancers (fit --balancer NAME --balancer-option KEY=VALUE)")
    table.add_column("name", no_wrap=True)
    table.add_column("kind", no_wrap=True)
    table.add_column("modes", no_wrap=True)
    table.add_column("options (defaults)", overflow="fold")
    for r in rows:
        opts = ", ".join(f"{k}={v}" for k, v in r["options"].items() if k != "mode")
        kind = "gradient" if r["modes"] else "loss"
        table.add_row(r["name"], kind, ", ".join(r["modes"]) or "-", opts or "-")
    con = console(quiet or as_json)
    con.print(table)
    con.print("kind: loss = loss weighting, gradient = gradient aggregation; each method's formula and paper: polytask balancers --json")
    if as_json:
        emit_json(rows)
