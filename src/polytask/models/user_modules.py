"""Modules a PyTorch user brings (a trunk, towers, task heads, experts), and how a network
config records them.

A user module is never pickled. The config records *that* a part is user-supplied and, as a
hint, the qualified name of what built it (``"user_modules": {"head_module": "pkg.make_head"}``;
the widths of a replaced trunk read ``"trunk": "custom"``). Rebuilding from the config needs
the same builders again, passed by name (``polytask.load(dir, head_module=make_head)``); the
weights then come from the model directory as for any other network.

Sizes are read, never asked for: a module's output width comes from a dry forward pass of two
zero rows in eval mode (:func:`output_width`).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from polytask.errors import PolytaskError
from polytask.models.heads import PerTaskHeads
from polytask.models.options import ALIASES, MODULE_FIELDS


def qualified_name(obj: Any) -> str:
    """``module.QualName`` of a builder (of a module instance: of its class)."""
    target = obj.func if isinstance(obj, functools.partial) else obj
    if isinstance(target, nn.Module):
        target = type(target)
    name = getattr(target, "__qualname__", None) or type(target).__qualname__
    module = getattr(target, "__module__", None)
    return f"{module}.{name}" if module else str(name)


def size_argument(shape: Sequence[int]) -> int | tuple[int, ...]:
    """What a builder is called with: ``p`` for rows of ``p`` values, the shape otherwise."""
    shape = tuple(int(v) for v in shape)
    return shape[0] if len(shape) == 1 else shape


def build_module(value: Any, shape: Sequence[int], what: str, copy_instance: bool = False) -> nn.Module:
    """An ``nn.Module`` from ``value``: a module (used as is, or deep-copied with
    ``copy_instance`` where each task needs its own) or a builder called with the input size."""
    if isinstance(value, nn.Module):
        return copy.deepcopy(value) if copy_instance else value
    module = value(size_argument(shape))
    if not isinstance(module, nn.Module):
        raise PolytaskError(f"the {what} builder {qualified_name(value)} returned {type(module).__name__}, not an nn.Module")
    return module


def output_width(module: nn.Module, shape: Sequence[int], what: str) -> int:
    """``k`` of ``module``'s output ``(n, k)`` on rows of ``shape`` (a dry forward pass)."""
    ref = next(iter(module.parameters()), None)
    if ref is None:
        ref = next(iter(module.buffers()), None)
    kwargs = {"device": ref.device, "dtype": ref.dtype} if ref is not None and ref.is_floating_point() else {}
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros((2, *shape), **kwargs))
    except Exception as exc:  # the user's forward may raise anything; say which module and input
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PolytaskError(f"the {what} fails on rows (n, {', '.join(map(str, shape))}): {first}") from None
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 2:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise PolytaskError(f"the {what} must map rows (n, {', '.join(map(str, shape))}) to (n, k); it returned {got}")
    return int(out.shape[1])


def distinct(modules: Sequence[nn.Module], what: str) -> None:
    """Refuse a builder that returned one module twice (the copies would be tied)."""
    if len({id(m) for m in modules}) != len(modules):
        raise PolytaskError(f"the {what} builder returned the same module twice: build a new module on every call")


def user_heads(builder: Callable[[str, int, int], nn.Module], output_dims: Mapping[str, int], rep_dim: int) -> PerTaskHeads:
    """One head per task from ``builder(task, rep_dim, out_dim)``, each checked to give ``out_dim`` outputs."""
    heads: dict[str, nn.Module] = {}
    for task, out_dim in output_dims.items():
        head = builder(task, int(rep_dim), int(out_dim))
        if not isinstance(head, nn.Module):
            raise PolytaskError(f"the head builder {qualified_name(builder)} returned {type(head).__name__} for task '{task}', not an nn.Module")
        width = output_width(head, (int(rep_dim),), f"head module of task '{task}'")
        if width != int(out_dim):
            raise PolytaskError(f"the head module of task '{task}' gives {width} outputs; the task needs {out_dim}")
        heads[task] = head
    distinct(list(heads.values()), "head")
    return PerTaskHeads(heads, dict(output_dims))


def check_partition(network: Any) -> None:
    """Every parameter in one group only (shared, or one task's): a user module that reuses
    another's parameters would make the balancers' gradients wrong."""
    from polytask.gradients import parameter_source

    owner: dict[tuple[int, int], str] = {}
    groups = [("the shared parameters", network.shared_parameters())]
    groups += [(f"task '{t}'", network.task_parameters(t)) for t in network.task_names]
    for name, params in groups:
        for p in params:
            base, region = parameter_source(p)
            rows = range(base.shape[0] if base.ndim else 1) if region is None else range(*region[:2])
            for r in rows:
                if owner.setdefault((id(base), r), name) != name:
                    raise PolytaskError(f"a parameter belongs to both {owner[(id(base), r)]} and {name}: user modules must not share parameters")


def recorded_modules(user: Mapping[str, Any]) -> dict[str, str]:
    """The config entry ``user_modules``: each given module field and its builder's name."""
    return {name: qualified_name(value) for name, value in user.items()}


def required_modules(config: Mapping[str, Any]) -> dict[str, str | None]:
    """The user modules a config needs to be rebuilt, with the recorded builder names (None
    for directories written before names were recorded, whose custom trunk reads ``"custom"``)."""
    recorded = dict(config.get("user_modules") or {})
    if not recorded and config.get("trunk") == "custom":
        return {"trunk_module": None}
    return recorded


def check_given(needed: Mapping[str, str | None], given: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The user modules to rebuild with (aliases resolved); a one-line PolytaskError when one
    the config needs is missing, or one it does not use is given."""
    modules = {ALIASES.get(k, k): v for k, v in given.items()}
    for name in modules:
        if name not in MODULE_FIELDS:
            raise PolytaskError(f"polytask.load takes no option '{name}' (user modules: {', '.join(MODULE_FIELDS)})")
    for name, hint in needed.items():
        if modules.get(name) is None:
            what = "<module or builder>" if name == "trunk_module" else "<builder>"
            built_by = f" (built by {hint})" if hint else ""
            raise PolytaskError(f"{source} uses a user {MODULE_FIELDS.get(name, name)} module{built_by}: pass {name}={what} to polytask.load")
    extra = [name for name in modules if name not in needed and modules[name] is not None]
    if extra:
        raise PolytaskError(f"{source} uses no user {MODULE_FIELDS[extra[0]]} module: do not pass {extra[0]}")
    return {k: v for k, v in modules.items() if v is not None}


def constructor_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    """A config without what only records user modules (``user_modules``, ``trunk: "custom"``)."""
    out = {k: v for k, v in config.items() if k != "user_modules"}
    if out.get("trunk") == "custom":
        out.pop("trunk")
    return out
