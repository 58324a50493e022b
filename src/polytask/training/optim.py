"""The optimizer and learning-rate schedule a :class:`TrainConfig` names, or the user's own."""

from __future__ import annotations

from typing import Any

import torch

from polytask.errors import PolytaskError
from polytask.training.config import TrainConfig


class _PlainGroups:
    """``add_param_group`` as torch defines it, called without its ``torch._disable_dynamo``
    wrapper. That wrapper imports ``torch._dynamo`` the first time any optimizer is built in a
    process (about 2.5 s of CPU on the benchmark machine, most of a small ``polytask fit``); it
    matters only to code that dynamo compiles, and nothing compiles the optimizer's set-up. A
    torch without the wrapper (no ``__wrapped__``) takes its own method."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        plain = getattr(torch.optim.Optimizer.add_param_group, "__wrapped__", None)
        if plain is None:
            super().add_param_group(param_group)  # type: ignore[misc]
        else:
            plain(self, param_group)


class Adam(_PlainGroups, torch.optim.Adam):
    """``torch.optim.Adam`` (Kingma and Ba 2015), built without importing ``torch._dynamo``."""


class AdamW(_PlainGroups, torch.optim.AdamW):
    """``torch.optim.AdamW`` (Loshchilov and Hutter 2019), built without importing ``torch._dynamo``."""


class SGD(_PlainGroups, torch.optim.SGD):
    """``torch.optim.SGD`` (with momentum), built without importing ``torch._dynamo``."""


def make_optimizer(config: TrainConfig, groups: list[dict[str, Any]]) -> torch.optim.Optimizer:
    """``config.optimizer_factory(groups)`` when given, else the named optimizer over ``groups``."""
    if config.optimizer_factory is not None:
        optimizer = config.optimizer_factory(groups)
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise PolytaskError(f"optimizer_factory returned {type(optimizer).__name__}, not a torch.optim.Optimizer")
        return optimizer
    if config.optimizer == "sgd":
        return _fast(SGD, groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return _fast(AdamW, groups, lr=config.lr, weight_decay=config.weight_decay)
    return _fast(Adam, groups, lr=config.lr, weight_decay=config.weight_decay)


def _fast(cls: type[torch.optim.Optimizer], groups: list[dict[str, Any]], **options: Any) -> torch.optim.Optimizer:
    """The optimizer in its fused implementation (one kernel for all parameters; on the CPU
    about 3x faster than the default for-loop over parameters, and equal to it up to rounding),
    else its multi-tensor (``foreach``) one, else the default."""
    for variant in ({"fused": True}, {"foreach": True}, {}):
        try:
            return cls(groups, **options, **variant)
        except (RuntimeError, ValueError, TypeError):
            continue
    return cls(groups, **options)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, periods: int) -> Any:
    """``config.scheduler_factory(optimizer)`` when given, else the named schedule (or None).

    The schedule advances once per epoch or once per step (``config.scheduler_step``);
    ``periods`` is how many times it will advance in the whole run, which a cosine schedule
    spans. ``step_size`` counts the same periods."""
    if config.scheduler_factory is not None:
        return config.scheduler_factory(optimizer)
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, periods))
    if config.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=config.step_size, gamma=config.gamma)
    return None
