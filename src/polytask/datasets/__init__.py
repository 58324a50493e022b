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
from polytask.registry import Registry, accepted_options, check_options

LOADERS: Registry[Callable[..., Dataset]] = Registry("data set", {
    "qm9": load_qm9,
    "multimnist": load_multimnist,
    "adult": load_adult,
    "exam": load_exam,
    "yeast": load_yeast,
    "solar_flare": load_solar_flare,
})


def names() -> list[str]:
    return LOADERS.names()


def load(name: str, **options: Any) -> Dataset:
    """Load data set ``name`` with loader-specific ``options`` (see each loader's docstring)."""
    key = LOADERS.key(name)
    loader = LOADERS[key]
    return loader(**check_options("data set", key, accepted_options(loader), options))


__all__ = ["Dataset", "load", "names"]
