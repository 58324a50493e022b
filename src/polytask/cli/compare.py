"""``polytask compare``: does MTL beat STL and the usual baselines on this table?"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from polytask.cli.common import console, emit_json, invocation, log_console, output_options
from polytask.cli.options import (
    data_config, data_options, load_problem, network_options, network_spec, train_config, training_options,
)
from polytask.errors import PolytaskError


def _names(text: str, option: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise PolytaskError(f"{option} expects one or more comma-separated names, got '{text}'")
    return names


@click.command("compare")
@click.argument("data", type=click.Path(dir_okay=False))
@data_options
@network_options
@training_options
@click.option("--seeds", type=int, default=None, help="Repeated random splits, one per seed (default 3).")
@click.option("--folds", type=int, default=None, help="K-fold cross-validation instead of --seeds.")
@click.option("--baselines", default="hgb,linear,mlp", show_default=True, metavar="NAMES",
              help="Comma-separated scikit-learn baselines (hgb, linear, mlp) or 'none'.")
@click.option("--match-params", is_flag=True, help="Scale STL widths to the first MTL network's parameter count.")
@click.option("--test", "test", type=click.Choice(["auto", "corrected", "plain"]), default="auto", show_default=True,
              help="Test behind the verdicts: auto (Nadeau-Bengio corrected when runs share training rows, "
                   "as seeds and folds do; plain otherwise), corrected or plain.")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Report directory to write.")
@output_options
def command(data: str, seeds: int | None, folds: int | None, baselines: str, match_params: bool, test: str,
            out: str, as_json: bool, quiet: bool, **o: Any) -> None:
    """Compare STL, MTL (each --arch x --balancer; comma-separated lists) and scikit-learn
    baselines on identical splits of DATA, with paired tests over seeds or folds, and say what
    to use: the candidate best on the validation rows if the test rows confirm it
    (Holm-adjusted over the candidates), else STL.

    Writes OUT/comparison.json, OUT/report.md, OUT/per_task.png, OUT/delta_m.png and a
    self-contained OUT/report.html.
    """
    from polytask.compare.candidates import build_candidates
    from polytask.compare.pipeline import run_and_write
    from polytask.compare.runner import Problem, RunPlan

    if seeds is not None and folds is not None:
        raise PolytaskError("give --seeds or --folds, not both")
    archs = _names(o["arch"], "--arch")
    balancer_names = _names(o["balancer"], "--balancer")
    spec = network_spec({**o, "arch": archs[0]})
    config = train_config({**o, "balancer": balancer_names[0]})
    baseline_names = [] if baselines.strip() == "none" else _names(baselines, "--baselines")
    candidates = build_candidates(archs, balancer_names, baseline_names, config.balancer_options)
    loaded, settings = load_problem(data, o), data_config(o)
    targets = loaded.targets
    problem = Problem(loaded.frame, list(targets.main), list(targets.aux), targets.kinds, weights=targets.weights,
                      features=list(settings.features) if settings.features is not None else None, name=Path(data).name,
                      data_config=settings)
    plan = RunPlan("folds" if folds is not None else "seeds", folds if folds is not None else (seeds or 3),
                   settings.val_fraction, settings.test_fraction, config.seed)
    con = console(quiet or as_json)
    summary, paths = run_and_write(problem, candidates, plan, spec, config, Path(out), match_params=match_params,
                                   test=test, console=log_console(quiet), show_progress=not (quiet or as_json),
                                   command=invocation())
    con.print(f"recommendation: {summary['recommendation']['text']}", markup=False)
    for line in summary["recommendation"]["evidence"]:
        con.print(f"  {line}", markup=False)
    con.print(summary["verdict"][0], markup=False)
    con.print(f"report: {paths['html']}")
    if as_json:
        emit_json({k: v for k, v in summary.items()} | {"files": {k: str(p) for k, p in paths.items()}})
