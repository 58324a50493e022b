"""Option groups of the commands that train, generated from the settings declarations.

``DataConfig``, ``NetworkSpec`` and ``TrainConfig`` declare every setting once (name, default,
help, choices: :mod:`polytask.settings`); the click options here are made from those
declarations, and ``--config FILE`` (YAML or JSON, the same names as the options with ``_``)
sets any of them. An option given on the command line wins over the file, the file over the
default. Only the task options (which columns to learn) are written by hand.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable
from dataclasses import Field, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from polytask.cli.common import parse_assignments, parse_widths
from polytask.data.config import DataConfig
from polytask.errors import PolytaskError
from polytask.settings import OptionInfo, declared_options, default_of
from polytask.tasks import TASK_KINDS, Targets
from polytask.training.config import TrainConfig
from polytask.models.spec import NetworkSpec

if TYPE_CHECKING:
    import pandas as pd

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]
#: The settings classes the options are generated from, in the order of ``--help``.
SETTINGS: tuple[type, ...] = (DataConfig, NetworkSpec, TrainConfig)


def _stack(options: list[Decorator]) -> Decorator:
    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return decorate


def _value_type(annotation: Any) -> Any:
    """The click type of a plain ``value`` field: int, float or str (Optional unwrapped)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return str
    if args and typing.get_origin(annotation) is not None:
        return _value_type(args[0])
    return annotation if annotation in (int, float, str) else str


def click_option(f: Field[Any], info: OptionInfo, annotation: Any) -> Decorator:
    """The click option of one declared field (its default shown as on the command line)."""
    flag, default = info.flag(f.name), default_of(f)
    if info.kind == "flag":
        return click.option(f"{flag}/--no-{flag[2:]}", f.name, default=default, show_default=True, help=info.help)
    if info.kind == "widths":
        return click.option(flag, f.name, default=",".join(str(w) for w in default), show_default=bool(default),
                            metavar="WIDTHS", help=info.help)
    if info.kind == "mapping":
        return click.option(flag, f.name, multiple=True, default=(), metavar="KEY=VALUE", help=info.help)
    if info.kind == "names":
        return click.option(flag, f.name, default=None, metavar="COLS", help=info.help)
    kind = click.Choice(info.choices) if info.choices else _value_type(annotation)
    return click.option(flag, f.name, type=kind, default=default, show_default=default is not None, help=info.help)


def options_of(cls: type) -> Decorator:
    """Every exposed field of a settings class as a click option."""
    hints = typing.get_type_hints(cls)
    return _stack([click_option(f, info, hints[f.name]) for f, info in declared_options(cls)])


config_option = click.option(
    "--config", "config_file", default=None, type=click.Path(dir_okay=False), metavar="FILE",
    help="YAML or JSON file of settings (the option names with '_'); options given here win over it.")

task_options = _stack(
    [
        click.option("--target", "-t", "targets", multiple=True, required=True, metavar="COL",
                     help="Target column (repeat for several tasks)."),
        click.option("--aux", "aux", multiple=True, metavar="COL",
                     help="Auxiliary target: trained as an extra output, never predicted."),
        click.option("--kind", "kinds", multiple=True, metavar="COL=KIND",
                     help=f"Task kind ({', '.join(TASK_KINDS)}); inferred when not given."),
        click.option("--weight", "weights", multiple=True, metavar="COL=W", help="Task weight alpha_t (default 1)."),
        click.option("--task-column", default=None, metavar="COL",
                     help="Multi-input setting: each row belongs to the task named in COL; the single "
                          "--target column is spread into one task per value."),
    ]
)
data_options = _stack([task_options, options_of(DataConfig)])
network_options = options_of(NetworkSpec)
training_options = _stack([options_of(TrainConfig), config_option])


# -- from option values to settings ---------------------------------------------------------------
def read_settings_file(path: str | Path) -> dict[str, Any]:
    """The mapping of settings in a YAML or JSON file; unknown names are refused."""
    path = Path(path)
    if not path.is_file():
        raise PolytaskError(f"config file '{path}' does not exist")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        elif path.suffix.lower() == ".json":
            values = json.loads(text)
        else:
            raise PolytaskError(f"config file '{path}' must end in .yaml, .yml or .json")
    except PolytaskError:
        raise
    except Exception as exc:  # yaml and json raise their own error types
        raise PolytaskError(f"config file '{path}' cannot be read: {str(exc).splitlines()[0]}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise PolytaskError(f"config file '{path}' must hold a mapping of settings, not {type(values).__name__}")
    known = {f.name for cls in SETTINGS for f, _ in declared_options(cls)}
    unknown = sorted(str(k) for k in values if k not in known)
    if unknown:
        raise PolytaskError(f"config file '{path}': unknown setting '{unknown[0]}' (settings: {', '.join(sorted(known))})")
    return dict(values)


def _given_on_command_line(name: str) -> bool:
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT")


def coerce(info: OptionInfo, raw: Any, where: str, annotation: Any) -> Any:
    """A setting's value from the command line or a settings file, or a PolytaskError naming it."""
    if info.kind == "widths":
        if isinstance(raw, (list, tuple)):
            return parse_widths(",".join(str(w) for w in raw), where)
        return parse_widths(str(raw), where)
    if info.kind == "mapping":
        if isinstance(raw, dict):
            return dict(raw)
        return parse_assignments(raw or (), where)
    if info.kind == "names":
        if raw is None or isinstance(raw, (list, tuple)):
            return None if raw is None else tuple(str(c) for c in raw)
        return tuple(c.strip() for c in str(raw).split(",") if c.strip())
    if info.kind == "flag":
        if not isinstance(raw, bool):
            raise PolytaskError(f"{where} expects true or false, got {raw!r}")
        return raw
    if raw is None:
        return None
    if info.choices and raw not in info.choices:
        raise PolytaskError(f"{where} must be one of {', '.join(info.choices)}, got {raw!r}")
    kind = _value_type(annotation)
    try:
        if kind is int and (isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer())):
            raise ValueError(raw)
        return kind(raw)
    except (TypeError, ValueError):
        raise PolytaskError(f"{where} expects {'a whole number' if kind is int else 'a number' if kind is float else 'text'}, "
                            f"got {raw!r}") from None


def settings_from_options(cls: type, o: dict[str, Any]) -> Any:
    """An instance of settings class ``cls`` from click option values and ``--config``."""
    file_path = o.get("config_file")
    file_values = read_settings_file(file_path) if file_path else {}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f, info in declared_options(cls):
        if f.name in file_values and not _given_on_command_line(f.name):
            raw, where = file_values[f.name], f"setting '{f.name}' in '{file_path}'"
        else:
            raw, where = o.get(f.name, default_of(f)), info.flag(f.name)
        kwargs[f.name] = coerce(info, raw, where, hints[f.name])
    return cls(**kwargs)


def train_config(o: dict[str, Any]) -> TrainConfig:
    from polytask import balancers

    config = settings_from_options(TrainConfig, o)
    balancers.get(config.balancer, **config.balancer_options)  # fail early, listing the valid names and options
    return config


def data_config(o: dict[str, Any]) -> DataConfig:
    return settings_from_options(DataConfig, o)


def network_spec(o: dict[str, Any]) -> NetworkSpec:
    from polytask.models import ARCHITECTURES

    spec = settings_from_options(NetworkSpec, o)
    if spec.arch not in ARCHITECTURES or spec.arch == "stl":
        names = ", ".join(sorted(a for a in ARCHITECTURES if a != "stl"))
        raise PolytaskError(f"unknown architecture '{spec.arch}' (choose from {names}; use --stl for the single-task baseline)")
    return spec


def aux_schedule(o: dict[str, Any]) -> Any:
    """The auxiliary weight schedule the options name, or None."""
    from polytask.auxiliary.schedules import aux_weight_schedule

    options = parse_assignments(o.get("aux_schedule_options") or (), "--aux-schedule-option")
    if o.get("aux_weight_schedule") is None:
        if options:
            raise PolytaskError("--aux-schedule-option needs --aux-weight-schedule")
        return None
    if not o.get("aux"):
        raise PolytaskError("--aux-weight-schedule needs at least one --aux column")
    return aux_weight_schedule(o["aux_weight_schedule"], **options)


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


@dataclass
class Problem:
    """What the task options resolve to: the table and the tasks to learn on it."""

    frame: pd.DataFrame
    targets: Targets

    @property
    def aux(self) -> list[str]:
        return list(self.targets.aux)


def load_problem(data: str, o: dict[str, Any]) -> Problem:
    from polytask.data import from_task_column, read_table

    frame = read_table(data)
    targets, aux, kinds, weights = _task_options(o)
    if o.get("task_column"):
        if len(targets) != 1:
            raise PolytaskError("--task-column takes exactly one --target (the label column)")
        kind = kinds.pop(targets[0], None)
        frame, targets = from_task_column(frame, o["task_column"], targets[0])
        if kind:
            kinds.update({t: kind for t in targets})
    return Problem(frame, Targets(tuple(targets), tuple(aux), kinds, weights))


def task_targets(o: dict[str, Any]) -> Targets:
    """The ``Targets`` the task options name (``--target``, ``--aux``, ``--kind``, ``--weight``)."""
    targets, aux, kinds, weights = _task_options(o)
    return Targets(tuple(targets), tuple(aux), kinds, weights)


def _task_options(o: dict[str, Any]) -> tuple[list[str], list[str], dict[str, str], dict[str, float]]:
    targets, aux = list(o["targets"]), list(o["aux"])
    kinds = {k: str(v) for k, v in parse_assignments(o["kinds"], "--kind").items()}
    weights = {}
    for k, v in parse_assignments(o["weights"], "--weight").items():
        try:
            weights[k] = float(v)
        except (TypeError, ValueError):
            raise PolytaskError(f"--weight {k} expects a number, got {v!r}") from None
    return targets, aux, kinds, weights
