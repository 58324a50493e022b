"""``polytask demo``: what MTL is for, in under a minute on 2 cores (no download).

A Caruana-style case: one *main* task that is expensive to label (100 labelled training rows)
and seven *related* tasks, cheap measurements taken on all 1,000 training rows, that are
needed only at training time (auxiliary tasks). Every task reads the same 3 latent factors of
60 inputs (``h = tanh(X U)``, :func:`polytask.synthetic.related_tasks`), each through its own
mix plus noise. Four models predict the main task on 2,000 test rows:

- **MTL**: one network, main + auxiliary tasks (a missing main label is masked, never imputed);
- **MTL, auxiliary labels shuffled** (Caruana's control): the same amount of auxiliary signal,
  permuted across rows, so it says nothing about each row;
- **STL**: a network of the same shape on the 100 labelled rows alone;
- **gradient boosting** (scikit-learn's HistGradientBoosting) on the same 100 rows.
"""

from __future__ import annotations

from typing import Any

import click

from polytask.cli.common import console, emit_json, output_options

DEMO_ROWS = {"train": 1000, "labelled": 100, "val": 200, "test": 2000}
N_FEATURES, N_TASKS = 60, 8


def demo_problem(seed: int = 0) -> tuple[Any, str, list[str], Any, Any]:
    """``(frame, main, aux, split, labelled_split)``: the main task has labels on the first
    ``DEMO_ROWS["labelled"]`` training rows only."""
    import numpy as np

    from polytask.data.splits import Split
    from polytask.synthetic import related_tasks

    train, labelled, val = DEMO_ROWS["train"], DEMO_ROWS["labelled"], DEMO_ROWS["val"]
    frame, names = related_tasks(n_rows=train + val + DEMO_ROWS["test"], n_features=N_FEATURES, n_tasks=N_TASKS,
                                 n_latent=3, noise=0.3, seed=1234 + seed)
    main, aux = "main", [f"related{i}" for i in range(1, N_TASKS)]
    frame = frame.rename(columns=dict(zip(names, [main, *aux])))
    frame.loc[labelled:train - 1, main] = np.nan
    idx = np.arange(len(frame))
    rest = (idx[train:train + val], idx[train + val:])
    return frame, main, aux, Split(idx[:train], *rest), Split(idx[:labelled], *rest)


def run_demo(seed: int, epochs: int, show: bool) -> dict[str, Any]:
    """Train the four models; returns the main task's test metrics of each and the rows used."""
    import polytask as pt
    from polytask.compare.candidates import build_candidates, run_candidate
    from polytask.setups import stl_settings
    from polytask.training.callbacks import ProgressCallback

    frame, main, aux, split, labelled = demo_problem(seed)
    features = pt.DataConfig(features=tuple(c for c in frame.columns if c.startswith("x")))
    spec = pt.NetworkSpec(trunk=(32, 16))
    config = pt.TrainConfig(epochs=epochs, batch_size=64, lr=3e-3, patience=30, seed=seed, val_metrics=False)
    progress = (lambda name: [ProgressCallback(name)]) if show else (lambda name: [])
    joint = pt.prepare(frame, pt.Targets([main], aux=aux), features, split=split)
    alone = pt.prepare(frame, [main], features, split=labelled)
    models = {
        "MTL": pt.train_model(joint, spec, config, callbacks=progress("MTL")),
        "MTL, auxiliary labels shuffled": pt.train_model(joint, spec, config, setups=[pt.ShuffleAux()],
                                                         callbacks=progress("MTL shuffled")),
        "STL": pt.train_model(alone, *stl_settings(spec, config), callbacks=progress("STL"), name="stl"),
    }
    arms = {name: model.summary["test_metrics"][main] for name, model in models.items()}
    hgb = next(c for c in build_candidates(["hps"], ["ew"], ["hgb"], {}) if c.family == "hgb")
    arms["gradient boosting"] = run_candidate(hgb, alone, spec, config, seed).test[main]
    rows = {"train": DEMO_ROWS["train"], "main labels": DEMO_ROWS["labelled"], "val": DEMO_ROWS["val"], "test": DEMO_ROWS["test"]}
    return {"main_task": main, "auxiliary_tasks": aux, "rows": rows, "test_metrics": arms}


def verdict(arms: dict[str, dict[str, float]]) -> str:
    """One line: what the user just saw, in test RMSE of the main task."""
    mtl, shuffled, stl, gbdt = (arms[k]["rmse"] for k in ("MTL", "MTL, auxiliary labels shuffled", "STL", "gradient boosting"))
    change = lambda a: 100 * (a - stl) / stl  # noqa: E731
    if mtl >= stl:
        return (f"Here MTL did not help: test RMSE {mtl:.3f} against STL's {stl:.3f} "
                f"(shuffled control {shuffled:.3f}, gradient boosting {gbdt:.3f}).")
    control = ("shuffling their labels took the gain away" if shuffled > mtl + 0.5 * (stl - mtl)
               else "but shuffling their labels kept part of the gain")
    return (f"Learning the related tasks together cut the main task's test RMSE by {-change(mtl):.0f}% against "
            f"single-task learning ({mtl:.3f} vs {stl:.3f}); {control} ({shuffled:.3f}), so the gain comes from what "
            f"they say about each row; gradient boosting on the labelled rows reached {gbdt:.3f}.")


def _table(arms: dict[str, dict[str, float]]) -> Any:
    from rich.table import Table

    stl = arms["STL"]["rmse"]
    table = Table(title=f"demo: the main task on {DEMO_ROWS['test']:,} test rows")
    for col in ("model", "RMSE", "R^2", "RMSE vs STL"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name, m in arms.items():
        table.add_row(name, f"{m['rmse']:.3f}", f"{m['r2']:.3f}", "-" if name == "STL" else f"{100 * (m['rmse'] - stl) / stl:+.1f}%")
    return table


@click.command("demo")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--epochs", type=int, default=200, show_default=True)
@output_options
def command(seed: int, epochs: int, as_json: bool, quiet: bool) -> None:
    """Show what multi-task learning is for: a main task with 100 labels learns better with
    seven related tasks measured on 1,000 rows, against single-task learning, gradient boosting
    and Caruana's shuffle control (the data is generated here; about half a minute)."""
    con = console(quiet or as_json)
    con.print(f"[bold]polytask demo[/]: a main task with {DEMO_ROWS['labelled']} labels and {N_TASKS - 1} related "
              f"tasks measured on {DEMO_ROWS['train']:,} rows")
    result = run_demo(seed, epochs, show=not (quiet or as_json))
    result["verdict"] = verdict(result["test_metrics"])
    con.print(_table(result["test_metrics"]))
    con.print(result["verdict"], markup=False)
    if as_json:
        emit_json(result)
