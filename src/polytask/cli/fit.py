"""``polytask fit``: train MTL (and optionally STL) on a table and save the model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from polytask.cli.common import console, emit_json, output_options, print_warnings
from polytask.cli.options import (
    aux_options, aux_schedule, data_config, data_options, load_problem, network_options, network_spec, options_of,
    train_config, training_options,
)
from polytask.data.stream_config import StreamConfig
from polytask.errors import PolytaskError

stream_options = options_of(StreamConfig)


@click.command("fit")
@click.argument("data", type=click.Path())
@data_options
@stream_options
@network_options
@training_options
@aux_options
@click.option("--init-from", default=None, type=click.Path(file_okay=False),
              help="Start from this model directory's shared trunk, with new heads for the targets given.")
@click.option("--freeze-trunk", is_flag=True, help="With --init-from: keep the reused trunk fixed.")
@click.option("--trunk-lr-scale", type=float, default=1.0, show_default=True,
              help="With --init-from: the trunk's learning rate is this times --lr (fine-tuning).")
@click.option("--stl", is_flag=True, help="Also train the single-task baseline and report both side by side.")
@click.option("--match-params", is_flag=True, help="Scale STL widths to match MTL's total parameter count.")
@click.option("--checkpoint-dir", default=None, type=click.Path(),
              help="Write a resumable checkpoint after every epoch here (a failed run keeps the last good one).")
@click.option("--log", "logs", multiple=True, metavar="KIND:PATH",
              help="Also log every epoch to csv:FILE, jsonl:FILE, tensorboard:DIR or mlflow[:EXPERIMENT] (repeatable; "
                   "the STL run logs beside the MTL one). OUT/history.csv is always written.")
@click.option("--log-file", default=None, type=click.Path(),
              help="Append one JSON line per epoch (losses, validation metrics, balancer weights) to this file.")
@click.option("--resume", is_flag=True, help="Continue training from the checkpoint in --checkpoint-dir.")
@click.option("--out", "-o", required=True, type=click.Path(), help="Model directory to write.")
@output_options
def command(
    data: str, out: str, stl: bool, match_params: bool, checkpoint_dir: str | None, resume: bool, log_file: str | None,
    logs: tuple[str, ...],
    as_json: bool, quiet: bool, **o: Any,
) -> None:
    """Train a multi-task network on DATA (CSV or Parquet) and save it to --out.

    With --stream, DATA may also be a directory of Parquet (or CSV) files; it is read in record
    batches, never whole, and the split is decided per row (--row-id, --split-column).

    The model directory holds the MTL model (and, with --stl, the STL baseline in OUT/stl) plus
    history.csv and report.json with validation and test metrics. OUT must be new, empty or a
    polytask model directory (checked before training); files of yours in it are kept. A failed
    run leaves an existing OUT untouched.
    """
    from polytask.models.capacity import capacity_report
    from polytask.training.callbacks import ProgressCallback
    from polytask.training.distributed import close, is_main_process
    from polytask.training.tracking import logger_from_spec

    from polytask.data import capture_warnings
    from polytask.data.prepare import prepare
    from polytask.report import early_stopping_lines, fit_warnings
    from polytask.workflow import fit

    out_dir = Path(out)
    if resume and checkpoint_dir is None:
        raise PolytaskError("--resume needs --checkpoint-dir (where the checkpoint is)")
    main = is_main_process()  # data parallel (torchrun): the first process prints and writes
    show = not (quiet or as_json) and main
    specs = [*logs, *([f"jsonl:{log_file}"] if log_file else [])]
    callbacks = {run: ([ProgressCallback(run.upper())] if show else []) + [logger_from_spec(s, run) for s in specs]
                 for run in ("mtl", "stl")}
    _check_outputs(out_dir, stl, checkpoint_dir, [*callbacks["mtl"], *(callbacks["stl"] if stl else [])])
    if o["stream"]:
        from polytask.cli.stream_fit import stream_command

        return stream_command(data, out_dir, callbacks["mtl"], as_json, quiet,
                              {**o, "stl": stl, "checkpoint_dir": checkpoint_dir, "resume": resume})
    if Path(data).is_dir():
        raise PolytaskError(f"'{data}' is a directory: give --stream to train on a directory of Parquet files")
    problem = load_problem(data, o)
    config, spec, data_settings = train_config(o), network_spec(o), data_config(o)
    setups = _setups(o, problem.aux, checkpoint_dir, resume, stl, match_params)
    with capture_warnings() as data_warnings:
        prepared = prepare(problem.frame, problem.targets, data_settings, seed=config.seed)
    if main:
        _print_columns(console(quiet or as_json), prepared.columns, data_warnings, quiet)
    report = fit(prepared, None, spec, config, setups=setups, callbacks=callbacks)
    if not main:
        close()
        return
    summary = report.to_dict()
    summary["columns"] = prepared.columns.to_dict()
    summary["controls"] = report.mtl.summary["controls"]
    stl_total = report.stl.network.parameter_counts()["total"] if report.stl is not None else None
    summary["capacity"] = capacity_report(report.mtl.network, stl_total)
    summary["early_stopping"] = early_stopping_lines(report)
    summary["warnings"] = [*data_warnings, *fit_warnings(report)]
    _write_model_directory(report, summary, out_dir)
    con = console(quiet or as_json)
    _print_summary(con, report, summary)
    con.print(f"saved to {out_dir}")
    print_warnings(summary["warnings"][len(data_warnings):], quiet)
    if as_json:
        emit_json({"model_dir": str(out_dir), **summary})
    close()


def _setups(o: dict[str, Any], aux: list[str], checkpoint_dir: str | None, resume: bool, stl: bool,
            match_params: bool) -> list[Any]:
    """The setups the options ask for (transfer, shuffle control, aux schedule, checkpoints, STL)."""
    from polytask.auxiliary import ShuffleAux
    from polytask.setups import Checkpoints, STLBaseline
    from polytask.transfer import TransferStart

    if o["init_from"] is None and (o["freeze_trunk"] or o["trunk_lr_scale"] != 1.0):
        raise PolytaskError("--freeze-trunk and --trunk-lr-scale need --init-from")
    if o["shuffle_aux"] and not aux:
        raise PolytaskError("--shuffle-aux needs at least one --aux column")
    setups = (
        TransferStart(o["init_from"], o["freeze_trunk"], o["trunk_lr_scale"]) if o["init_from"] else None,
        ShuffleAux(o["shuffle_seed"]) if o["shuffle_aux"] else None,
        aux_schedule(o),
        Checkpoints(checkpoint_dir, resume) if checkpoint_dir else None,
        STLBaseline(match_params) if stl else None,
    )
    return [s for s in setups if s is not None]


#: The files ``fit`` writes beside the model in OUT (and the STL baseline's directory).
MODEL_FILES = ("history.csv", "report.json")
STL_DIR = "stl"


def _check_outputs(out_dir: Path, stl: bool, checkpoint_dir: str | None, callbacks: list[Any]) -> None:
    """Every output path (--out, --checkpoint-dir, the --log targets), checked before training."""
    from polytask.io import check_output_paths

    targets = [("--log", cb.path) for cb in callbacks if isinstance(getattr(cb, "path", None), Path)]
    directories = [("--log", cb.log_dir) for cb in callbacks if isinstance(getattr(cb, "log_dir", None), Path)]
    if checkpoint_dir is not None:
        directories.append(("--checkpoint-dir", Path(checkpoint_dir)))
    check_output_paths(out_dir, MODEL_FILES, (STL_DIR,) if stl else (), directories=directories, targets=targets)


def _write_model_directory(report: Any, summary: dict[str, Any], out_dir: Path) -> None:
    """The MTL model with its history.csv and report.json, and the STL baseline in stl/
    (:func:`polytask.io.save_model_files`: the new model.json is the commit point)."""
    from polytask.io import ModelFiles, save_model_files
    from polytask.serialization import atomic_write_json
    from polytask.training.tracking import write_history_csv

    def history(model: Any) -> Any:
        return lambda path: write_history_csv(path, model.summary["history"])

    models = {}
    if report.stl is not None:
        models[STL_DIR] = ModelFiles(*report.stl.to_files(), files={"history.csv": history(report.stl)})
    files = {"history.csv": history(report.mtl), "report.json": lambda path: atomic_write_json(path, summary)}
    save_model_files(out_dir, *report.mtl.to_files(), files=files, models=models)


def _print_columns(con: Any, columns: Any, warnings: list[str], quiet: bool) -> None:
    """What was made of the table (features, encodings, dropped columns, task kinds), and the
    data's warnings (on stderr), before training starts."""
    for line in columns.lines():
        con.print(line, markup=False, highlight=False)
    print_warnings(warnings, quiet)


def _print_summary(con: Any, report: Any, summary: dict[str, Any]) -> None:
    from polytask.models.capacity import format_capacity
    from polytask.report import comparison_table, metrics_table

    metrics = report.metrics("test")
    con.print(comparison_table(metrics["mtl"], metrics.get("stl"), title=f"test metrics ({len(report.prepared.split.test)} rows)"))
    aux_names = [t.name for t in report.prepared.tasks if t.auxiliary]
    if aux_names:
        aux_metrics = {t: report.mtl.summary["test_metrics"][t] for t in aux_names if t in report.mtl.summary["test_metrics"]}
        con.print(metrics_table(aux_metrics, "auxiliary tasks (trained, never predicted): test metrics"))
    weights = summary["mtl"]["mean_applied_weights"]
    con.print(f"balancer {summary['mtl']['balancer']}: mean weights " + ", ".join(f"{t}={w:.3g}" for t, w in weights.items()))
    for line in summary["early_stopping"]:
        con.print(line, markup=False, highlight=False)
    for key, value in summary["controls"].items():
        con.print(f"{key.replace('_', ' ')}: {value}")
    con.print(format_capacity(summary["capacity"]))
