"""Task balancing: loss weighting and gradient aggregation behind one registry of names.

``get(name, **options)`` builds a method; an unknown name or option gets a clear error that
lists the valid choices.
"""

from __future__ import annotations

from typing import Any

from polytask.balancers.base import Balancer, LossWeighting, StepContext
from polytask.balancers.static import EqualWeighting, StaticWeighting
from polytask.balancers.db_mtl import DualBalancing
from polytask.balancers.dwa import DynamicWeightAverage
from polytask.balancers.famo import FAMO
from polytask.balancers.gls import GeometricLossStrategy
from polytask.balancers.gradnorm import GradNorm
from polytask.balancers.imtl_l import ImpartialLossWeighting
from polytask.balancers.rlw import RandomLossWeighting
from polytask.balancers.stch import SmoothTchebycheff
from polytask.balancers.uncertainty import UncertaintyWeighting
from polytask.registry import Registry, accepted_options, check_options

REGISTRY: Registry[type[Balancer]] = Registry("balancer")


def register(cls: type[Balancer]) -> type[Balancer]:
    """Add a balancer class to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    REGISTRY.register(cls.name, cls)
    return cls


for _cls in (EqualWeighting, StaticWeighting):
    register(_cls)

for _cls in (
    UncertaintyWeighting, DynamicWeightAverage, RandomLossWeighting, GeometricLossStrategy, ImpartialLossWeighting,
    DualBalancing, FAMO, SmoothTchebycheff, GradNorm,
):
    register(_cls)

from polytask.balancers.aggregation import AGGREGATORS  # noqa: E402  (gradient aggregation)

for _cls in AGGREGATORS:
    register(_cls)


def names() -> list[str]:
    """Registered method names, sorted."""
    return REGISTRY.names()


def modes(name: str) -> tuple[str, ...]:
    """Gradient modes a method supports: ``("exact", "representation")`` or a subset for
    gradient-aggregation methods (chosen with the ``mode`` option), ``()`` for loss weighting."""
    return tuple(REGISTRY[name].modes)


def get(name: str, **options: Any) -> Balancer:
    """Build the balancer registered as ``name`` with ``options`` (names normalised, unknown
    options refused in the registry's wording)."""
    key = REGISTRY.key(name)
    cls = REGISTRY[key]
    return cls(**check_options("balancer", key, accepted_options(cls), options))


__all__ = ["Balancer", "LossWeighting", "REGISTRY", "StepContext", "get", "modes", "names", "register"]
