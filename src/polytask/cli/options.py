"""Option groups reused by every command that trains: data, network and training options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import click
import pandas as pd

from polytask import balancers
from polytask.cli.common import parse_assignments, parse_widths
from polytask.data import from_task_column, read_table
from polytask.models import ARCHITECTURES
from polytask.tasks import TASK_KINDS
from polytask.training.config import EARLY_STOPPING, OPTIMIZERS, SCHEDULES, TrainConfig
from polytask.workflow import NetworkSpec


def _stack(options: list[Callable[..., Any]]) -> Callable[..., Any]:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate


data_options = _stack(
    [
        click.option("--target", "-t", "targets", multiple=True, required=True, metavar="COL",
                     help="Target column (repeat for several tasks)."),
        click.option("--aux", "aux", multiple=True, metavar="COL",
                     help="Auxiliary target: trained as an extra output, never predicted."),
        click.option("--kind", "kinds", multiple=True, metavar="COL=KIND",
                     help=f"Task kind ({', '.join(TASK_KINDS)}); inferred when not given."),
        click.option("--weight", "weights", multiple=True, metavar="COL=W", help="Task weight alpha_t (default 1)."),
        click.option("--features", default=None, metavar="COLS",
                     help="Comma-separated feature columns (default: every non-target column)."),
        click.option("--task-column", default=None, metavar="COL",
                     help="Multi-input setting: each row belongs to the task named in COL; the single "
                          "--target column is spread into one task per value."),
        click.option("--missing", type=click.Choice(["impute", "error"]), default="impute", show_default=True,
                     help="Missing feature values: impute (median + indicator) or error."),
        click.option("--val-fraction", type=float, default=0.15, show_default=True),
        click.option("--test-fraction", type=float, default=0.15, show_default=True),
    ]
)

network_options = _stack(
    [
        click.option("--arch", default="hps", show_default=True, metavar="NAME",
                     help=f"Architecture ({', '.join(sorted(a for a in ARCHITECTURES if a != 'stl'))})."),
        click.option("--arch-option", "arch_options", multiple=True, metavar="KEY=VALUE",
                     help="Architecture-specific option (repeatable)."),
        click.option("--trunk", default="64,64", show_default=True, metavar="WIDTHS", help="Shared layer widths."),
        click.option("--head-hidden", default="", metavar="WIDTHS", help="Hidden widths of each task head."),
        click.option("--activation", default="relu", show_default=True),
        click.option("--dropout", type=float, default=0.0, show_default=True),
        click.option("--norm", type=click.Choice(["none", "batch", "layer"]), default="none", show_default=True),
    ]
)

training_options = _stack(
    [
        click.option("--epochs", type=int, default=100, show_default=True),
        click.option("--batch-size", type=int, default=64, show_default=True),
        click.option("--optimizer", type=click.Choice(OPTIMIZERS), default="adam", show_default=True),
        click.option("--lr", type=float, default=1e-3, show_default=True, help="Learning rate."),
        click.option("--momentum", type=float, default=0.9, show_default=True, help="SGD momentum."),
        click.option("--l2", type=float, default=0.0, show_default=True, help="L2 penalty lambda on weights."),
        click.option("--weight-decay", type=float, default=0.0, show_default=True, help="Optimizer weight decay."),
        click.option("--lr-schedule", type=click.Choice(SCHEDULES), default="none", show_default=True),
        click.option("--grad-clip", type=float, default=None, help="Clip the gradient norm to this value."),
        click.option("--early-stopping", type=click.Choice(EARLY_STOPPING), default="per_task", show_default=True),
        click.option("--patience", type=int, default=20, show_default=True),
        click.option("--balancer", default="ew", show_default=True, metavar="NAME",
                     help="Task balancing method (see 'polytask balancers')."),
        click.option("--balancer-option", "balancer_options", multiple=True, metavar="KEY=VALUE"),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--device", default="cpu", show_default=True, help="cpu, cuda, cuda:N or auto."),
    ]
)

aux_options = _stack(
    [
        click.option("--aux-weight-schedule", default=None, metavar="NAME",
                     help="Schedule of the auxiliary tasks' weight over training: constant, linear_decay, "
                          "cosine_decay or step (default: their fixed --weight)."),
        click.option("--aux-schedule-option", "aux_schedule_options", multiple=True, metavar="KEY=VALUE",
                     help="Schedule option: final=FACTOR at the end (default 0); step also takes at=FRACTION."),
        click.option("--shuffle-aux", is_flag=True,
                     help="Shuffle control: permute auxiliary targets across training rows (main tasks untouched)."),
        click.option("--shuffle-seed", type=int, default=None, help="Seed of the shuffle control (default --seed)."),
    ]
)


def aux_schedule(o: dict[str, Any]) -> Any:
    """The auxiliary weight schedule the options name, or None."""
    from polytask.auxiliary.schedules import aux_weight_schedule

    options = parse_assignments(o.get("aux_schedule_options") or (), "--aux-schedule-option")
    if o.get("aux_weight_schedule") is None:
        if options:
            from polytask.errors import PolytaskError

            raise PolytaskError("--aux-schedule-option needs --aux-weight-schedule")
        return None
    if o.get("aux_weight_schedule") is not None and not o.get("aux"):
        from polytask.errors import PolytaskError

        raise PolytaskError("--aux-weight-schedule needs at least one --aux column")
    return aux_weight_schedule(o["aux_weight_schedule"], **options)


@dataclass
class Problem:
    """What the data options resolve to."""

    frame: pd.DataFrame
    targets: list[str]
    aux: list[str]
    kinds: dict[str, str]
    weights: dict[str, float]
    features: list[str] | None


def load_problem(data: str, o: dict[str, Any]) -> Problem:
    frame = read_table(data)
    targets, aux = list(o["targets"]), list(o["aux"])
    kinds = {k: str(v) for k, v in parse_assignments(o["kinds"], "--kind").items()}
    weights = {k: float(v) for k, v in parse_assignments(o["weights"], "--weight").items()}
    if o.get("task_column"):
        if len(targets) != 1:
            from polytask.errors import PolytaskError

            raise PolytaskError("--task-column takes exactly one --target (the label column)")
        kind = kinds.pop(targets[0], None)
        frame, targets = from_task_column(frame, o["task_column"], targets[0])
        if kind:
            kinds.update({t: kind for t in targets})
    features = [c.strip() for c in o["features"].split(",")] if o.get("features") else None
    return Problem(frame, targets, aux, kinds, weights, features)


def train_config(o: dict[str, Any]) -> TrainConfig:
    name = o["balancer"]
    options = parse_assignments(o["balancer_options"], "--balancer-option")
    balancers.get(name, **options)  # fail early, with the list of valid names and options
    return TrainConfig(
        epochs=o["epochs"], batch_size=o["batch_size"], optimizer=o["optimizer"], lr=o["lr"],
        momentum=o["momentum"], l2=o["l2"], weight_decay=o["weight_decay"], lr_schedule=o["lr_schedule"],
        grad_clip=o["grad_clip"], early_stopping=o["early_stopping"], patience=o["patience"],
        seed=o["seed"], device=o["device"], balancer=name, balancer_options=options,
    )


def network_spec(o: dict[str, Any]) -> NetworkSpec:
    if o["arch"] not in ARCHITECTURES or o["arch"] == "stl":
        from polytask.errors import PolytaskError

        names = ", ".join(sorted(a for a in ARCHITECTURES if a != "stl"))
        raise PolytaskError(f"unknown architecture '{o['arch']}' (choose from {names}; use --stl for the single-task baseline)")
    return NetworkSpec(
        arch=o["arch"],
        trunk=parse_widths(o["trunk"], "--trunk"),
        head_hidden=parse_widths(o["head_hidden"], "--head-hidden"),
        activation=o["activation"],
        dropout=o["dropout"],
        norm=o["norm"],
        options=parse_assignments(o["arch_options"], "--arch-option"),
    )
