"""``polytask predict``: predictions of a saved model, one column per main task."""

from __future__ import annotations

from pathlib import Path

import click

from polytask.cli.common import console, emit_json, output_options
from polytask.errors import PolytaskError


@click.command("predict")
@click.argument("model_dir", type=click.Path(file_okay=False))
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Predictions file (.csv or .parquet).")
@output_options
def command(model_dir: str, data: str, out: str, as_json: bool, quiet: bool) -> None:
    """Predict every main task of MODEL_DIR on DATA and write --out.

    Regression tasks get one value column; classification tasks get the predicted label plus
    one probability column per class. Auxiliary tasks are never predicted and their columns are
    not needed.
    """
    from polytask.data import read_table
    from polytask.fitted import load_model
    from polytask.serialization import atomic_write_bytes

    out_path = Path(out)
    if out_path.suffix.lower() not in (".csv", ".parquet", ".pq"):
        raise PolytaskError(f"output file '{out_path}' must end in .csv or .parquet")
    model = load_model(model_dir)
    frame = read_table(data)
    preds = model.predict(frame)
    if out_path.suffix.lower() == ".csv":
        payload = preds.to_csv(index=False).encode()
    else:
        import io

        buf = io.BytesIO()
        preds.to_parquet(buf, index=False)
        payload = buf.getvalue()
    atomic_write_bytes(out_path, payload)
    console(quiet or as_json).print(f"wrote {len(preds)} predictions ({', '.join(preds.columns)}) to {out_path}")
    if as_json:
        emit_json({"out": str(out_path), "rows": len(preds), "columns": list(preds.columns)})
