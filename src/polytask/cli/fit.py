"""``polytask fit``: train MTL (and optionally STL) on a table and save the model directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from polytask.cli.common import console, emit_json, output_options
from polytask.cli.options import data_options, load_problem, network_options, network_spec, train_config, training_options
from polytask.errors import PolytaskError
from polytask.io import check_output_directory, staged_directory, write_model_files
from polytask.models.capacity import capacity_report, format_capacity
from polytask.report import comparison_table
from polytask.serialization import atomic_write_json
from polytask.training.callbacks import JsonLinesLogger, ProgressCallback


@click.command("fit")
@click.argument("data", type=click.Path(dir_okay=False))
@data_options
@network_options
@training_options
@click.option("--stl", is_flag=True, help="Also train the single-task baseline and report both side by side.")
@click.option("--match-params", is_flag=True, help="Scale STL widths to match MTL's total parameter count.")
@click.option("--checkpoint-dir", default=None, type=click.Path(file_okay=False),
              help="Write a resumable checkpoint after every epoch here (a failed run keeps the last good one).")
@click.option("--log-file", default=None, type=click.Path(dir_okay=False),
              help="Append one JSON line per epoch (losses, validation metrics, balancer weights) to this file.")
@click.option("--resume", is_flag=True, help="Continue training from the checkpoint in --checkpoint-dir.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
@output_options
def command(
    data: str, out: str, stl: bool, match_params: bool, checkpoint_dir: str | None, resume: bool, log_file: str | None,
    as_json: bool, quiet: bool, **o: Any,
) -> None:
    """Train a multi-task network on DATA (CSV or Parquet) and save it to --out.

    The model directory holds the MTL model (and, with --stl, the STL baseline in OUT/stl) plus
    report.json with validation and test metrics. A failed run leaves an existing OUT untouched.
    """
    from polytask.workflow import fit

    out_dir = Path(out)
    check_output_directory(out_dir)
    if resume and checkpoint_dir is None:
        raise PolytaskError("--resume needs --checkpoint-dir (where the checkpoint is)")
    problem = load_problem(data, o)
    config = train_config(o)
    spec = network_spec(o)
    con = console(quiet or as_json)
    show = not (quiet or as_json)
    report = fit(
        problem.frame, problem.targets, problem.aux, problem.kinds, problem.weights,
        features=problem.features, spec=spec, config=config, stl=stl, match_params=match_params,
        val_fraction=o["val_fraction"], test_fraction=o["test_fraction"], missing=o["missing"],
        callbacks=([ProgressCallback("MTL")] if show else []) + ([JsonLinesLogger(log_file)] if log_file else []),
        stl_callbacks=[ProgressCallback("STL")] if show else [],
        checkpoint_dir=checkpoint_dir, resume=resume,
    )
    summary = report.to_dict()
    stl_total = report.stl.network.parameter_counts()["total"] if report.stl is not None else None
    summary["capacity"] = capacity_report(report.mtl.network, stl_total)
    with staged_directory(out_dir) as staging:
        write_model_files(report.mtl, staging)
        if report.stl is not None:
            (staging / "stl").mkdir()
            write_model_files(report.stl, staging / "stl")
        atomic_write_json(staging / "report.json", summary)
    metrics = report.metrics("test")
    con.print(comparison_table(metrics["mtl"], metrics.get("stl"), title=f"test metrics ({len(report.prepared.split.test)} rows)"))
    weights = summary["mtl"]["mean_applied_weights"]
    con.print(f"balancer {summary['mtl']['balancer']}: mean weights " + ", ".join(f"{t}={w:.3g}" for t, w in weights.items()))
    con.print(f"best epochs: {summary['mtl']['best_epoch']}")
    con.print(format_capacity(summary["capacity"]))
    con.print(f"saved to {out_dir}")
    if as_json:
        emit_json({"model_dir": str(out_dir), **summary})
