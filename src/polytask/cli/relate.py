"""``polytask relate``: how the tasks of a table relate (hidden-unit sharing, gradient cosine,
look-ahead affinity), written as CSV, JSON, heatmaps and a text summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from polytask.cli.common import console, emit_json, output_options
from polytask.cli.options import (
    data_config, data_options, load_problem, network_options, network_spec, train_config, training_options,
)


def prepare_from_options(data: str, o: dict[str, Any]):  # type: ignore[no-untyped-def]
    """The prepared problem, network spec and training config the shared options describe
    (split seeded by --seed, as ``polytask fit`` does)."""
    from polytask.data.prepare import prepare

    problem = load_problem(data, o)
    config = train_config(o)
    spec = network_spec(o)
    prepared = prepare(problem.frame, problem.targets, data_config(o), seed=config.seed)
    return prepared, spec, config


@click.command("relate")
@click.argument("data", type=click.Path(dir_okay=False))
@data_options
@network_options
@training_options
@click.option("--method", "methods", type=click.Choice(["sharing", "cosine", "tag", "all"]), multiple=True,
              default=("all",), show_default=True, help="Relatedness measure (repeatable).")
@click.option("--every", type=int, default=10, show_default=True,
              help="Record gradient cosine and look-ahead affinity every this many training steps.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output directory.")
@output_options
def command(data: str, methods: tuple[str, ...], every: int, out: str, as_json: bool, quiet: bool, **o: Any) -> None:
    """Train one multi-task network on DATA and measure how its tasks relate.

    sharing: Spearman correlation of each task's sensitivity to the shared units (gradient and
    ablation; Caruana 1997). cosine: mean cosine between per-task gradients of the shared
    weights, and the fraction of steps in conflict. tag: look-ahead affinity Z[i->j] = 1 -
    L_j(after a step on L_i) / L_j (Fifty et al. 2021). Writes one CSV, JSON and PNG per matrix,
    curves over training, relatedness.json and summary.txt to --out.
    """
    from polytask.training.callbacks import ProgressCallback

    from polytask.relate.measure import measure_relatedness
    from polytask.relate.report import RELATE_MARKER, check_output, relatedness_summary, write_relatedness

    out_dir = Path(out)
    check_output(out_dir, RELATE_MARKER)
    prepared, spec, config = prepare_from_options(data, o)
    show = not (quiet or as_json)
    result = measure_relatedness(prepared, list(methods), every, spec, config,
                                 callbacks=[ProgressCallback("MTL")] if show else [])
    write_relatedness(result, out_dir)
    con = console(quiet or as_json)
    con.print(relatedness_summary(result), markup=False, highlight=False, soft_wrap=True)
    con.print(f"written to {out_dir}")
    if as_json:
        emit_json({"out": str(out_dir), **result.to_dict()})
