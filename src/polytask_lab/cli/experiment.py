"""``polytask experiment NAME``: Caruana's synthetic MTL experiments, seeded, with artefacts."""

from __future__ import annotations

import click

from polytask.cli.common import console, emit_json, log_console, output_options
from polytask_lab.cli import lab_imports


@click.command("experiment")
@click.argument("name", required=False)
@click.option("--out", "-o", default="experiments-out", show_default=True, type=click.Path(file_okay=False),
              help="Directory for NAME.json and NAME.png.")
@click.option("--quick", is_flag=True, help="A few short trials (checks that it runs; the figures mean little).")
@click.option("--seed", type=int, default=0, show_default=True, help="Base seed; trial i uses 1000 * seed + i.")
@click.option("--trials", type=int, default=None, help="Override the number of trials.")
@click.option("--list", "list_only", is_flag=True, help="List the experiments and exit.")
@output_options
def command(name: str | None, out: str, quick: bool, seed: int, trials: int | None, list_only: bool, as_json: bool, quiet: bool) -> None:
    """Run experiment NAME, print its table and write OUT/NAME.json, OUT/NAME.png and OUT/NAME.md.

    Experiments: peaks, inputs-as-outputs, parity, amplification, attribute-selection,
    eavesdropping, representation-bias, transfer. Each protocol is in docs/EXPERIMENTS.md.
    """
    from polytask.errors import PolytaskError

    con = console(quiet or as_json)
    if trials is not None and trials < 1:
        raise PolytaskError(f"--trials must be at least 1, got {trials}")
    with lab_imports("experiment", needs=("jinja2",)):
        from polytask_lab.experiments.artifacts import write_artifacts
        from polytask_lab.experiments.common import print_result
        from polytask_lab.experiments.registry import EXPERIMENTS, get

        if list_only:
            for n in EXPERIMENTS:
                con.print(n)
            if as_json:
                emit_json({"experiments": list(EXPERIMENTS)})
            return
        if name is None:
            raise PolytaskError(f"name an experiment ({', '.join(EXPERIMENTS)})")
        run = get(name)
        log_console(quiet or as_json).print(f"[bold]{name}[/]{' (quick)' if quick else ''}, seed {seed}")
        result = run(quick=quick, seed=seed, trials_override=trials)
        paths = write_artifacts(result, out)
    print_result(result, con)
    con.print(f"wrote {paths['json']} and {paths['png']}")
    if as_json:
        emit_json({**result.to_dict(), "files": {k: str(v) for k, v in paths.items()}})
