"""``polytask predict``: predictions of a saved model, one column per main task."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from polytask.cli.common import console, emit_json, output_options, print_warnings
from polytask.errors import PolytaskError


@click.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Predictions file (.csv or .parquet).")
@click.option("--wide", is_flag=True,
              help="Multi-input models (--task-column): every task's prediction for every row, instead of one "
                   "prediction per row for its own task.")
@output_options
def command(model_dir: str, data: str, out: str, wide: bool, as_json: bool, quiet: bool) -> None:
    """Predict every main task of MODEL_DIR on DATA and write --out.

    Regression tasks get one value column; classification tasks get the predicted label plus
    one probability column per class. Auxiliary tasks are never predicted and their columns are
    not needed. The columns the model keeps (fit's --keep) come first. A model fitted with
    --task-column predicts each row of DATA for the task its task column names (the label
    column, under the target's name) unless --wide is given.
    """
    from polytask.data import LongFormat, capture_warnings, read_table
    from polytask.fitted import load_model
    from polytask.serialization import atomic_write_bytes

    out_path = Path(out)
    if out_path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise PolytaskError(f"output file '{out_path}' must end in .csv or .parquet")
    model = load_model(model_dir)
    with capture_warnings() as warned:
        frame = read_table(data, exact=model.preprocessor.keep_)
        preds = model.predict(frame)
        long = LongFormat.from_dict(model.preprocessor.long_format_)
        if long is not None and not wide:
            preds = _own_task(long, preds, frame, model.preprocessor.keep_)
    atomic_write_bytes(out_path, _encoded(preds, out_path))
    con = console(quiet or as_json)
    print_warnings(warned, quiet)
    con.print(f"wrote {len(preds)} predictions ({', '.join(preds.columns)}) to {out_path}")
    if as_json:
        emit_json({"out": str(out_path), "rows": len(preds), "columns": list(preds.columns), "warnings": warned})


def _own_task(long: Any, preds: Any, frame: Any, keep: list[str]) -> Any:
    """One prediction per row, for the task its task column names, after the kept columns."""
    import pandas as pd

    if not long.applies_to(frame):
        raise PolytaskError(f"the model was fitted on the long form: the data needs its task-id column "
                            f"'{long.task_column}' (or pass --wide for every task on every row)")
    own = long.own_task(preds, frame)
    kept = [c for c in keep if c in preds.columns and c not in own.columns]
    return pd.concat([preds[kept], own], axis=1)


def _encoded(preds: Any, out_path: Path) -> bytes:
    if out_path.suffix.lower() == ".csv":
        return preds.to_csv(index=False).encode()
    import io

    buf = io.BytesIO()
    preds.to_parquet(buf, index=False)
    return buf.getvalue()
