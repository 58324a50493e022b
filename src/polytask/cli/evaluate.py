"""``polytask evaluate``: metrics of a saved model on labelled data."""

from __future__ import annotations

import click

from polytask.cli.common import console, emit_json, output_options


@click.command("evaluate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--include-aux", is_flag=True, help="Also report auxiliary tasks (never headline results).")
@output_options
def command(model_dir: str, data: str, include_aux: bool, as_json: bool, quiet: bool) -> None:
    """Compute each task's metrics of MODEL_DIR on the labelled DATA (missing labels ignored)."""
    from polytask.data import read_table
    from polytask.fitted import load_model
    from polytask.report import metrics_table

    model = load_model(model_dir)
    metrics = model.evaluate(read_table(data), include_auxiliary=include_aux)
    console(quiet or as_json).print(metrics_table(metrics, f"metrics of {model_dir}"))
    if as_json:
        emit_json(metrics)
