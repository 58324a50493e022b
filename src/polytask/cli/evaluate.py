"""``polytask evaluate``: metrics of a saved model on labelled data."""

from __future__ import annotations

import click

from polytask.cli.common import console, emit_json, output_options, print_warnings


@click.command("evaluate")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--include-aux", is_flag=True, help="Also report auxiliary tasks (never headline results).")
@output_options
def command(model_dir: str, data: str, include_aux: bool, as_json: bool, quiet: bool) -> None:
    """Compute each task's metrics of MODEL_DIR on the labelled DATA (missing labels ignored).

    DATA is read as fit read it: for a model fitted with --task-column, the long table (each
    row labelled for the task its task column names) is accepted as it is.
    """
    from polytask.data import LongFormat, capture_warnings, read_table
    from polytask.fitted import load_model
    from polytask.report import metrics_table

    model = load_model(model_dir)
    with capture_warnings() as warned:
        frame = read_table(data)
        long = LongFormat.from_dict(model.preprocessor.long_format_)
        if long is not None and long.applies_to(frame):
            frame = long.wide(frame)
        metrics = model.evaluate(frame, include_auxiliary=include_aux)
    print_warnings(warned, quiet)
    console(quiet or as_json).print(metrics_table(metrics, f"metrics of {model_dir}"))
    if as_json:
        emit_json(metrics)
