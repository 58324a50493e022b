"""The parts of a model rebuilt from an untrusted ``model.json`` and weights, every field checked.

A model directory may be damaged, hand-edited or hostile, so nothing in it is used before it is
checked: the type of every entry, the tasks (unique names, known kinds), each task's target
encoder (classes, finite means, positive scales), the preprocessing (finite numbers, positive
scales), the best epochs (one non-negative integer per task), and the network: it is first
built on PyTorch's ``meta`` device (no memory) and its parameter names and shapes compared with
the saved tensors, so a config naming a giant layer is refused before anything is allocated
(a network with user modules is built once, for real: the user's code may not run on ``meta``).
The network is then built for real, loaded, and run once on a zero row, which catches a user
module of the wrong shape. Each failure is one :class:`PolytaskError` naming the directory,
the file and the entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch

from polytask.data.preprocessing import FeaturePreprocessor
from polytask.data.targets import TargetEncoder
from polytask.errors import PolytaskError, first_line
from polytask.models import network_from_config
from polytask.models.base import MultiTaskNetwork
from polytask.tasks import Task, TaskSet
from polytask.training.trainer import predict_raw

META_FILE = "model.json"
#: Entries of ``model.json`` a model cannot be rebuilt without, and the type of each.
REQUIRED_META = {"arch": str, "network": dict, "tasks": list, "encoders": dict, "preprocessing": dict, "best_epoch": dict}
T = TypeVar("T")


def _naming(exc: PolytaskError, source: str, prefix: str) -> PolytaskError:
    """``exc`` as is when it names ``source``, else with ``prefix`` (which does)."""
    return exc if source in str(exc) else PolytaskError(prefix + str(exc))


def _finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _build(source: str, entry: str, make: Callable[[], T]) -> T:
    """``make()``, any failure becoming one line naming ``entry``."""
    try:
        return make()
    except PolytaskError as exc:
        raise PolytaskError(f"{source} is corrupted: '{META_FILE}' entry '{entry}': {exc}") from None
    except Exception as exc:  # a hand-edited entry can break the constructor in any way
        raise PolytaskError(f"{source} is corrupted: '{META_FILE}' entry '{entry}' is malformed ({type(exc).__name__})") from None


def _fail(source: str, entry: str, why: str) -> PolytaskError:
    return PolytaskError(f"{source} is corrupted: '{META_FILE}' entry '{entry}' {why}")


def check_tasks(meta: Mapping[str, Any], source: str) -> list[Task]:
    tasks = []
    for i, d in enumerate(meta["tasks"]):
        entry = f"tasks[{i}]"
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not isinstance(d.get("kind"), str):
            raise _fail(source, entry, "is not a task (a map with a name and a kind)")
        if not isinstance(d.get("columns"), list) or not all(isinstance(c, str) for c in d["columns"]):
            raise _fail(source, entry, "has no list of column names")
        if not _finite(d.get("weight", 1.0)) or not isinstance(d.get("auxiliary", False), bool):
            raise _fail(source, entry, "has a weight or auxiliary flag of the wrong type")
        tasks.append(_build(source, entry, lambda d=d: Task.from_dict(d)))
    _build(source, "tasks", lambda: TaskSet(tuple(tasks)))
    return tasks


def check_encoder(task: Task, d: Any, source: str) -> TargetEncoder:
    entry = f"encoders.{task.name}"
    if not isinstance(d, dict) or not all(isinstance(d.get(k), list) for k in ("classes", "mean", "std")):
        raise _fail(source, entry, "is not a target encoder (classes, mean, std)")
    if not all(isinstance(c, (str, int, float, bool)) for c in d["classes"]) or len({str(c) for c in d["classes"]}) != len(d["classes"]):
        raise _fail(source, entry, "has classes that are not distinct plain values")
    if task.kind == "regression" and not (len(d["mean"]) == len(d["std"]) == len(task.columns)
                                          and all(map(_finite, d["mean"])) and all(_finite(s) and s > 0 for s in d["std"])):
        raise _fail(source, entry, f"needs {len(task.columns)} finite mean(s) and positive std(s)")
    if task.kind in ("binary", "multiclass") and len(d["classes"]) < 2 or task.kind == "binary" and len(d["classes"]) != 2:
        raise _fail(source, entry, f"has {len(d['classes'])} classes for a {task.kind} task")
    return _build(source, entry, lambda: TargetEncoder.from_dict(task, d))


def _statistics(v: Any) -> bool:
    """A numeric column's (or date part's) fitted statistics: finite mean, median, positive std."""
    return (isinstance(v, dict) and {"mean", "std", "median"} <= set(v) and all(_finite(x) for x in v.values())
            and v["std"] > 0)


def check_preprocessing(d: dict[str, Any], source: str) -> FeaturePreprocessor:
    entry = "preprocessing"
    columns, numeric, categorical = d.get("columns"), d.get("numeric"), d.get("categorical")
    dates = d.get("dates", {})
    if d.get("missing") not in ("impute", "error"):
        raise _fail(source, entry, "has no missing-value policy (impute or error)")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or len(set(columns)) != len(columns):
        raise _fail(source, entry, "has no list of distinct column names")
    if not isinstance(numeric, dict) or not all(map(_statistics, numeric.values())):
        raise _fail(source, entry, "has numeric columns without a finite mean and median and a positive std")
    if not isinstance(dates, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("parts"), dict) and all(map(_statistics, v["parts"].values()))
        for v in dates.values()
    ):
        raise _fail(source, entry, "has date columns without finite statistics for each part")
    if not isinstance(categorical, dict) or not all(isinstance(v, list) and all(isinstance(c, str) for c in v)
                                                    for v in categorical.values()):
        raise _fail(source, entry, "has categorical columns without a list of categories")
    if not isinstance(d.get("indicators"), list) or not set(d["indicators"]) <= set(numeric) | set(dates):
        raise _fail(source, entry, "has missing-value indicators for columns that are not numeric or date features")
    pre = _build(source, entry, lambda: FeaturePreprocessor.from_dict(d))
    _build(source, entry, lambda: pre.n_outputs)
    return pre


def check_best_epoch(d: dict[str, Any], tasks: list[Task], source: str) -> dict[str, int]:
    if set(d) != {t.name for t in tasks} or not all(type(v) is int and v >= 0 for v in d.values()):
        raise _fail(source, "best_epoch", "needs one non-negative integer epoch per task")
    return dict(d)


def _network_config(meta: Mapping[str, Any], encoders: list[TargetEncoder], pre: FeaturePreprocessor,
                    source: str) -> dict[str, Any]:
    config = dict(meta["network"])
    dims = config.get("output_dims")
    if not isinstance(dims, dict) or dims != {e.task.name: e.output_dim for e in encoders}:
        raise _fail(source, "network.output_dims", "does not match the tasks' encoders")
    shape = config.get("input_shape") or [config.get("input_dim")]
    if not isinstance(shape, list) or not all(type(v) is int and v > 0 for v in shape) or len(shape) not in (1, 3):
        raise _fail(source, "network.input_shape", "is not a list of 1 or 3 positive integers")
    if len(shape) == 1 and shape[0] != pre.n_outputs:
        raise _fail(source, "network.input_shape", f"is {shape} but the preprocessing gives {pre.n_outputs} inputs")
    return config


def _uses_modules(config: Mapping[str, Any]) -> str:
    recorded = config.get("user_modules")
    return f" (do the user modules given, {', '.join(sorted(recorded))}, build what was saved?)" if isinstance(recorded, dict) and recorded else ""


def check_weights(expected: Mapping[str, torch.Tensor], snapshot: Mapping[str, torch.Tensor], epoch: int,
                  source: str, hint: str) -> None:
    """The saved tensors of ``epoch`` are exactly the network's state (``expected``, possibly on
    the meta device): the same names, shapes and dtypes, and finite."""
    missing = sorted(set(expected) - set(snapshot))
    extra = sorted(set(snapshot) - set(expected))
    where = f"{source} does not match its network: the weights of epoch {epoch}"
    if missing:
        also = f" and hold '{extra[0]}', which the network does not have" if extra else ""
        raise PolytaskError(f"{where} lack tensor '{missing[0]}'{also}{hint}")
    if extra:
        raise PolytaskError(f"{where} hold tensor '{extra[0]}', which the network does not have{hint}")
    for name, want in expected.items():
        tensor = snapshot[name]
        if tuple(tensor.shape) != tuple(want.shape) or tensor.dtype != want.dtype:
            raise PolytaskError(f"{where} hold tensor '{name}' as {tensor.dtype} {list(tensor.shape)}, the network has "
                                f"{want.dtype} {list(want.shape)}{hint}")
        if tensor.is_floating_point() and tensor.numel() and not bool(torch.isfinite(tensor).all()):
            raise PolytaskError(f"{source} is corrupted: tensor '{name}' of epoch {epoch} holds NaN or infinite values")


def snapshots_of(flat: Mapping[str, torch.Tensor], epochs: set[int], source: str) -> dict[int, dict[str, torch.Tensor]]:
    """``{epoch: state}`` from ``"epoch{e}/{name}"`` tensors; every best epoch must be there."""
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        head, _, name = key.partition("/")
        if not head.startswith("epoch") or not head[5:].isdigit() or not name:
            raise PolytaskError(f"{source} is corrupted: unexpected tensor '{key}' in the weights")
        snapshots.setdefault(int(head[5:]), {})[name] = tensor
    for epoch in sorted(epochs):
        if epoch not in snapshots:
            raise PolytaskError(f"{source} is incomplete: the weights of epoch {epoch} are missing")
    return snapshots


def build_network(arch: str, config: dict[str, Any], modules: Mapping[str, Any],
                  snapshots: dict[int, dict[str, torch.Tensor]], last: int, source: str) -> MultiTaskNetwork:
    """The network ``config`` describes with the weights of its last best epoch, checked on the
    meta device first (names and shapes against every snapshot), then built, loaded with the
    snapshot of epoch ``last`` and run once."""
    hint = _uses_modules(config)
    if not hint:  # the user's own modules are built on the device they were written for only
        try:
            with torch.device("meta"):
                skeleton = network_from_config(arch, config, modules, source=source)
        except PolytaskError as exc:
            raise _naming(exc, source, f"{source} is corrupted: '{META_FILE}' entry 'network': ") from None
        except Exception as exc:
            raise PolytaskError(f"{source} is corrupted: '{META_FILE}' describes a network that cannot be built "
                                f"({first_line(exc, limit=200)})") from None
        expected = skeleton.state_dict()
        for epoch, snapshot in snapshots.items():
            check_weights(expected, snapshot, epoch, source, hint)
    try:
        network = network_from_config(arch, config, modules, source=source)
    except PolytaskError:
        raise  # about the user modules given: their messages name them
    except Exception as exc:
        raise PolytaskError(f"{source}: the network cannot be built ({first_line(exc, limit=200)}){hint}") from None
    if hint:  # not checked on the meta device
        for epoch, snapshot in snapshots.items():
            check_weights(network.state_dict(), snapshot, epoch, source, hint)
    try:
        network.load_state_dict(snapshots[last])
        network.eval()
        shape = config.get("input_shape") or [config["input_dim"]]
        out = predict_raw(network, torch.zeros((1, *shape)))
        dims = config["output_dims"]
        if set(out) != set(dims) or any(tuple(out[t].shape) != (1, dims[t]) for t in dims):
            raise ValueError("its outputs do not have the saved tasks' widths")
    except Exception as exc:  # load_state_dict or a user module's forward
        raise PolytaskError(f"{source}: the network cannot run with the saved weights ({first_line(exc, limit=200)}){hint}") from None
    return network


def model_parts(meta: Mapping[str, Any], tensors: Mapping[str, torch.Tensor], modules: Mapping[str, Any],
                source: str) -> dict[str, Any]:
    """Every part of the model ``meta`` and ``tensors`` describe, each checked (see the module
    docstring), as the keyword arguments of :class:`polytask.fitted.FittedModel`; ``modules``:
    the user modules it needs."""
    for key, kind in REQUIRED_META.items():
        if key not in meta:
            raise PolytaskError(f"{source} is corrupted: '{META_FILE}' lacks '{key}'")
        if not isinstance(meta[key], kind) or (kind is list and not meta[key]):
            raise _fail(source, key, f"is not a{' non-empty' if kind is list else ''} {kind.__name__}")
    for key in ("train_config", "summary"):
        if not isinstance(meta.get(key, {}), dict):
            raise _fail(source, key, "is not a dict")
    tasks = check_tasks(meta, source)
    encoders = [check_encoder(t, meta["encoders"].get(t.name), source) for t in tasks]
    preprocessor = check_preprocessing(meta["preprocessing"], source)
    best_epoch = check_best_epoch(meta["best_epoch"], tasks, source)
    config = _network_config(meta, encoders, preprocessor, source)
    snapshots = snapshots_of(tensors, set(best_epoch.values()), source)
    network = build_network(meta["arch"], config, modules, snapshots, max(best_epoch.values()), source)
    return {"network": network, "tasks": tasks, "encoders": encoders, "preprocessor": preprocessor,
            "snapshots": snapshots, "best_epoch": best_epoch, "train_config": dict(meta.get("train_config", {})),
            "summary": dict(meta.get("summary", {}))}
