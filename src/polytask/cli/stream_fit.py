"""``polytask fit DATA --stream``: train on files read as record batches, never loaded whole,
and save the same model directory as the in-memory ``fit`` (see :mod:`polytask.streamfit`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from polytask.cli.common import console, emit_json, print_warnings
from polytask.cli.options import data_config, network_spec, settings_from_options, task_targets, train_config
from polytask.errors import PolytaskError

#: Options of ``fit`` that a streamed fit does not take, with the reason given.
UNSUPPORTED = {
    "stl": "--stl", "init_from": "--init-from", "task_column": "--task-column", "shuffle_aux": "--shuffle-aux",
    "aux_weight_schedule": "--aux-weight-schedule",
}


def stream_command(data: str, out_dir: Path, callbacks: list[Any], as_json: bool, quiet: bool, o: dict[str, Any]) -> None:
    """Prepare, train and save as ``fit`` does, streaming the data (options as ``fit``'s)."""
    from polytask.data import capture_warnings
    from polytask.data.stream_config import StreamConfig
    from polytask.data.streaming import prepare_stream
    from polytask.serialization import atomic_write_json
    from polytask.io import save_model_files
    from polytask.report import metrics_table
    from polytask.streamfit import fit_stream, stream_report
    from polytask.training.tracking import write_history_csv

    given = [flag for key, flag in UNSUPPORTED.items() if o.get(key)]
    if given:
        raise PolytaskError(f"{given[0]} is not available with --stream")
    stream = settings_from_options(StreamConfig, o)
    config, spec, settings = train_config(o), network_spec(o), data_config(o)
    with capture_warnings() as data_warnings:
        prepared = prepare_stream(data, task_targets(o), settings, stream, seed=config.seed)
    con = console(quiet or as_json)
    for line in prepared.columns.lines():
        con.print(line, markup=False, highlight=False)
    rows = prepared.rows
    con.print(f"split ({prepared.split.method}): {rows['train']} train, {rows['val']} validation, {rows['test']} test rows")
    print_warnings(data_warnings, quiet)
    callbacks, resume_from = _checkpoints(callbacks, o.get("checkpoint_dir"), bool(o.get("resume")))
    fit = fit_stream(prepared, spec=spec, config=config, callbacks=callbacks, resume_from=resume_from)
    summary = stream_report(fit)
    summary["warnings"] = list(data_warnings)
    model = fit.model
    files = {"history.csv": lambda path: write_history_csv(path, model.summary["history"]),
             "report.json": lambda path: atomic_write_json(path, summary)}
    save_model_files(out_dir, *model.to_files(), files=files)
    main = {t.name for t in prepared.tasks if not t.auxiliary}
    con.print(metrics_table({t: m for t, m in summary["mtl"]["test"].items() if t in main},
                            f"test metrics ({rows['test']} rows)"))
    con.print(f"saved to {out_dir}")
    if as_json:
        emit_json({"model_dir": str(out_dir), **summary})


def _checkpoints(callbacks: list[Any], directory: str | None, resume: bool) -> tuple[list[Any], Path | None]:
    """A checkpoint after every epoch in ``DIR/mtl`` (as the in-memory fit writes it), and the
    checkpoint to resume from with ``--resume``."""
    from polytask.training.callbacks import CheckpointCallback
    from polytask.training.checkpoint import has_checkpoint

    if directory is None:
        return callbacks, None
    where = Path(directory) / "mtl"
    if resume and not has_checkpoint(where):
        raise PolytaskError(f"no checkpoint to resume from in '{where}'")
    return [*callbacks, CheckpointCallback(where)], where if resume else None
