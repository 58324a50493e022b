"""Benchmark data sets that install offline, through the optional ``datasets`` extra.

``load(name, **options)`` returns a :class:`Dataset` (table, targets, features, default split and
``info`` with source, licence, tasks and preprocessing); ``names()`` lists the loaders. Each
loader reads the files shipped inside its package (no download); when the package is missing
it raises a :class:`~polytask.errors.PolytaskError` naming what to install.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polytask.datasets.adult import load_adult
from polytask.datasets.base import Dataset
from polytask.datasets.exam import load_exam
from polytask.datasets.multimnist import load_multimnist
from polytask.datasets.qm9 import load_qm9
from polytask.datasets.solar_flare import load_solar_flare
from polytask.datasets.yeast import load_yeast
from polytask.errors import PolytaskError

LOADERS: dict[str, Callable[..., Dataset]] = {
    "qm9": load_qm9,
    "multimnist": load_multimnist,
    "adult": load_adult,
    "exam": load_exam,
    "yeast": load_yeast,
    "solar_flare": load_solar_flare,
}


def names() -> list[str]:
    return sorted(LOADERS)


def load(name: str, **options: Any) -> Dataset:
    """Load data set ``name`` with loader-specific ``options`` (see each loader's docstring)."""
    if name not in LOADERS:
        raise PolytaskError(f"unknown data set '{name}' (choose from {', '.join(names())})")
    try:
        return LOADERS[name](**options)
    except TypeError as exc:
        raise PolytaskError(f"data set '{name}': {exc}") from None


__all__ = ["Dataset", "load", "names"]
