"""Task balancing: loss weighting and gradient aggregation behind one registry of names.

``get(name, **options)`` builds a method; an unknown name or option gets a clear error that
lists the valid choices.
"""

from __future__ import annotations

import inspect
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
from polytask.errors import PolytaskError

REGISTRY: dict[str, type[Balancer]] = {}


def register(cls: type[Balancer]) -> type[Balancer]:
    """Add a balancer class to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    REGISTRY[cls.name] = cls
    return cls


for _cls in (EqualWeighting, StaticWeighting):
    register(_cls)

for _cls in (
    UncertaintyWeighting, DynamicWeightAverage, RandomLossWeighting, GeometricLossStrategy, ImpartialLossWeighting,
    DualBalancing, FAMO, SmoothTchebycheff, GradNorm,
):
    register(_cls)


def names() -> list[str]:
    """Registered method names, sorted."""
    return sorted(REGISTRY)


def modes(name: str) -> tuple[str, ...]:
    """Gradient modes a method supports: ``("exact", "representation")`` or a subset for
    gradient-aggregation methods (chosen with the ``mode`` option), ``()`` for loss weighting."""
    key = name.strip().lower().replace("-", "_")
    if key not in REGISTRY:
        raise PolytaskError(f"unknown balancer '{name}' (choose from {', '.join(names())})")
    return tuple(REGISTRY[key].modes)


def get(name: str, **options: Any) -> Balancer:
    """Build the balancer registered as ``name`` with ``options``."""
    key = name.strip().lower().replace("-", "_")
    if key not in REGISTRY:
        raise PolytaskError(f"unknown balancer '{name}' (choose from {', '.join(names())})")
    cls = REGISTRY[key]
    params = inspect.signature(cls.__init__).parameters
    accepted = [p for p in params if p != "self" and params[p].kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
    unknown = [k for k in options if k not in accepted]
    if unknown:
        choices = ", ".join(accepted) if accepted else "none"
        raise PolytaskError(f"balancer '{key}' takes no option '{unknown[0]}' (options: {choices})")
    return cls(**options)


__all__ = ["Balancer", "LossWeighting", "REGISTRY", "StepContext", "get", "modes", "names", "register"]
