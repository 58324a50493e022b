"""Validation of balancer options: each bad value raises a one-line PolytaskError that names
the method and the option.

Options may come from Python or from the command line (``--balancer-option KEY=VALUE``, parsed
as JSON where possible), so numbers are accepted as ints, floats or numeric strings.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from polytask.errors import PolytaskError


def _bad(method: str, option: str, rule: str, value: Any) -> PolytaskError:
    return PolytaskError(f"balancer '{method}': option '{option}' must be {rule}, got {value!r}")


def real(method: str, option: str, value: Any, *, low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False) -> float:
    """``value`` as a finite float inside the given bounds (closed unless ``*_open``)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")
    rule = "a number" + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, bool):
        raise _bad(method, option, rule, value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(method, option, rule, value) from None
    if not math.isfinite(x):
        raise _bad(method, option, rule, value)
    if low is not None and (x < low or (low_open and x == low)):
        raise _bad(method, option, rule, value)
    if high is not None and (x > high or (high_open and x == high)):
        raise _bad(method, option, rule, value)
    return x


def integer(method: str, option: str, value: Any, *, low: int | None = None) -> int:
    """``value`` as an int (no fractional part), at least ``low``."""
    rule = "an integer" + (f" >= {low}" if low is not None else "")
    if isinstance(value, bool):
        raise _bad(method, option, rule, value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise _bad(method, option, rule, value) from None
    if not math.isfinite(x) or x != int(x) or (low is not None and x < low):
        raise _bad(method, option, rule, value)
    return int(x)


def choice(method: str, option: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` as one of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise _bad(method, option, f"one of {', '.join(choices)}", value)
    return value


def reals(method: str, option: str, value: Any, *, low: float | None = None) -> list[float]:
    """``value`` as a list of finite floats, each at least ``low``."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise _bad(method, option, "a list of numbers", value)
    return [real(method, option, v, low=low) for v in value]
