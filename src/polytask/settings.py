"""One declaration per option.

Every setting a user can change is a field of a settings dataclass (``TrainConfig``,
``NetworkSpec``). The field's metadata carries its help text and how it is spelled on the
command line and in the scikit-learn estimators; the CLI options, the estimators' parameters
and ``--config FILE`` are generated from these declarations, so a default, a choice list or a
help text is written exactly once::

    @dataclass
    class TrainConfig:
        lr: float = option(1e-3, help="Learning rate.")
        trunk: tuple[int, ...] = option((64, 64), help="Shared layer widths.", kind="widths")
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass
from typing import Any, Literal

#: How a value is written on the command line: ``value`` (one typed value), ``widths``
#: (comma-separated positive integers, ``""`` for none), ``mapping`` (repeatable KEY=VALUE),
#: ``flag`` (a boolean switch), ``names`` (comma-separated column names).
OptionKind = Literal["value", "widths", "mapping", "flag", "names"]

_KEY = "polytask"


@dataclass(frozen=True)
class OptionInfo:
    """What a settings field declares beyond its name, type and default."""

    help: str
    choices: tuple[str, ...] = ()
    kind: OptionKind = "value"
    #: Command-line flag; None: ``--`` plus the field name with ``-`` for ``_``.
    cli: str | None = None
    #: Parameter name in the scikit-learn estimators; None: the field name.
    sklearn: str | None = None
    #: False for Python-only settings (modules, callables): no CLI option, no estimator parameter.
    expose: bool = True
    #: False for command-line settings an estimator has no use for (its data come as arrays).
    in_sklearn: bool = True

    def flag(self, name: str) -> str:
        return self.cli or "--" + name.replace("_", "-")

    def sklearn_name(self, name: str) -> str:
        return self.sklearn or name


def option(
    default: Any = MISSING,
    *,
    help: str,
    default_factory: Callable[[], Any] | Any = MISSING,
    choices: tuple[str, ...] = (),
    kind: OptionKind = "value",
    cli: str | None = None,
    sklearn: str | None = None,
    expose: bool = True,
    in_sklearn: bool = True,
) -> Any:
    """A dataclass field that declares a user-facing option (see the module docstring)."""
    info = OptionInfo(help=help, choices=tuple(choices), kind=kind, cli=cli, sklearn=sklearn, expose=expose,
                      in_sklearn=in_sklearn)
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_KEY: info})


def option_info(f: Field[Any]) -> OptionInfo | None:
    """The declaration of a field made with :func:`option`, or None for a plain field."""
    info = f.metadata.get(_KEY)
    return info if isinstance(info, OptionInfo) else None


def declared_options(cls: type, exposed_only: bool = True) -> list[tuple[Field[Any], OptionInfo]]:
    """The option fields of a settings dataclass, in declaration order."""
    out = []
    for f in dataclasses.fields(cls):
        info = option_info(f)
        if info is not None and (info.expose or not exposed_only):
            out.append((f, info))
    return out


def default_of(f: Field[Any]) -> Any:
    """A field's default value (a fresh one for ``default_factory`` fields)."""
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise ValueError(f"field '{f.name}' has no default")
