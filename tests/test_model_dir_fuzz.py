"""Damaged and malicious model directories: every failure is one PolytaskError, nothing hangs,
nothing is unpickled.

At least 150 seeded cases mutate a saved model directory: truncated, emptied, garbage and
oversized files (sparse, so nothing is written), FIFOs, symbolic links (to /dev/zero, to other
files, dangling), directories in place of files, flipped bytes, pickle payloads, wrong types and
missing keys anywhere in ``model.json``, lying weights entries and safetensors headers, and
weights that were dropped, added, reshaped, retyped, renamed or made non-finite (rewritten with
a correct checksum so the checks behind it are reached). Each case loads the directory and
predicts under a timer: the outcome must be a model that predicts or a one-line PolytaskError
naming the directory; a traceback of any other type, or a hang, fails the test.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import random
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save as safetensors_bytes

import polytask as pt
from polytask.io import MAX_META_BYTES, MAX_WEIGHTS_BYTES, META_FILE, weights_path
from polytask.models import NetworkSpec
from polytask.synthetic import related_tasks

CASES = 180
SECONDS_PER_CASE = 20


class Payload:
    """Unpickling this creates the marker file: it must never happen."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, list[Path]]:
    frame, _ = related_tasks(n_rows=120, n_features=4, n_tasks=2, noise=0.3, seed=11)
    rng = np.random.default_rng(0)
    frame["colour"] = rng.choice(["red", "blue"], size=len(frame))
    frame["label"] = np.where(frame["task0"] > 0, "yes", "no")
    frame["grade"] = pd.cut(frame["task1"], [-np.inf, -0.5, 0.5, np.inf], labels=["lo", "mid", "hi"]).astype(str)
    root = tmp_path_factory.mktemp("fuzz")
    dirs = []
    for arch, targets in (("hps", pt.Targets(["task0", "label", "grade"], aux=["task1"])), ("mmoe", ["task0", "task1"])):
        model = pt.fit(frame, targets, NetworkSpec(arch=arch, trunk=(6,)), pt.TrainConfig(epochs=3, seed=1)).mtl
        dirs.append(model.save(root / arch))
    return frame, dirs


# ------------------------------------------------------------------------------- the mutations
def _meta(d: Path) -> dict[str, Any]:
    return json.loads((d / META_FILE).read_text())


def _write_meta(d: Path, meta: Any) -> None:
    (d / META_FILE).write_text(json.dumps(meta))


def _set_weights(d: Path, data: bytes) -> None:
    """Replace the weights with ``data`` under a correct name, size and checksum."""
    meta = _meta(d)
    weights_path(d).unlink()
    digest = hashlib.sha256(data).hexdigest()
    name = f"weights-{digest[:16]}.safetensors"
    (d / name).write_bytes(data)
    meta["weights"] = {"file": name, "bytes": len(data), "sha256": digest}
    _write_meta(d, meta)


def _tensors(d: Path) -> dict[str, torch.Tensor]:
    return pt.io.read_model_files(d)[1]


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, (*prefix, i))
    return out


def _at(obj: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    for key in path[:-1]:
        obj = obj[key]
    return obj, path[-1]


WRONG = [None, True, -1, 0, 10**30, 1e308, -0.0, "x", "", [], {}, [[[]]], {"a": 1}, float("nan"), float("inf"), [1, "a"]]


def wrong_type(rng: random.Random, d: Path) -> str:
    meta = _meta(d)
    path = rng.choice(_paths(meta))
    parent, key = _at(meta, path)
    parent[key] = rng.choice(WRONG)
    _write_meta(d, meta)
    return f"{'/'.join(map(str, path))} = {parent[key]!r}"


def missing_key(rng: random.Random, d: Path) -> str:
    meta = _meta(d)
    path = rng.choice([p for p in _paths(meta) if isinstance(_at(meta, p)[0], dict)])
    parent, key = _at(meta, path)
    del parent[key]
    _write_meta(d, meta)
    return f"without {'/'.join(map(str, path))}"


def truncated(rng: random.Random, d: Path) -> str:
    target = rng.choice([d / META_FILE, weights_path(d)])
    data = target.read_bytes()
    target.write_bytes(data[: rng.randrange(len(data))])
    return target.name


def garbage(rng: random.Random, d: Path) -> str:
    target = rng.choice([d / META_FILE, weights_path(d)])
    target.write_bytes(rng.randbytes(rng.choice([0, 1, 7, 8, 100, 5000])))
    return target.name


def flipped(rng: random.Random, d: Path) -> str:
    target = rng.choice([d / META_FILE, weights_path(d)])
    data = bytearray(target.read_bytes())
    for _ in range(rng.randint(1, 5)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    target.write_bytes(bytes(data))
    return target.name


def oversized(rng: random.Random, d: Path) -> str:
    target, limit = rng.choice([(d / META_FILE, MAX_META_BYTES), (weights_path(d), MAX_WEIGHTS_BYTES)])
    with open(target, "r+b") as fh:
        fh.truncate(limit + 1)  # sparse: nothing is written to disk
    return target.name


def special_file(rng: random.Random, d: Path) -> str:
    target = rng.choice([d / META_FILE, weights_path(d)])
    target.unlink()
    kind = rng.choice(["fifo", "/dev/zero", "/dev/null", "/dev/urandom", "dangling", "other", "directory", "dirlink"])
    if kind == "fifo":
        os.mkfifo(target)
    elif kind.startswith("/dev/"):
        os.symlink(kind, target)
    elif kind == "dangling":
        os.symlink(d / "nowhere", target)
    elif kind == "other":
        (d.parent / f"{d.name}-elsewhere").write_text("{}")
        os.symlink(d.parent / f"{d.name}-elsewhere", target)
    elif kind == "directory":
        target.mkdir()
    else:
        os.symlink(d.parent, target)
    return f"{target.name} -> {kind}"


def pickled(rng: random.Random, d: Path, marker: Path) -> str:
    payload = pickle.dumps(Payload(marker))
    where = rng.choice(["weights", "weights (checksum fixed)", "model.json", "torch.save"])
    if where == "weights":
        weights_path(d).write_bytes(payload)
    elif where == "weights (checksum fixed)":
        _set_weights(d, payload)
    elif where == "model.json":
        (d / META_FILE).write_bytes(payload)
    else:
        target = weights_path(d)
        torch.save({"x": Payload(marker)}, target)
        (d / "weights.safetensors").write_bytes(target.read_bytes())
        meta = _meta(d)
        meta["format_version"] = 1
        _write_meta(d, meta)
    return where


def lying_entry(rng: random.Random, d: Path) -> str:
    meta = _meta(d)
    entry = meta["weights"]
    change = rng.choice(["../../etc/passwd", "/etc/passwd", "model.json", "sha", "bytes", "no file", "format", "version"])
    if change in ("../../etc/passwd", "/etc/passwd", "model.json"):
        entry["file"] = change
    elif change == "sha":
        entry["sha256"] = "0" * 64
    elif change == "bytes":
        entry["bytes"] = entry["bytes"] + rng.randint(1, 10)
    elif change == "no file":
        del entry["file"]
    elif change == "format":
        meta["format"] = rng.choice(["polytask", "", None, 1])
    else:
        meta["format_version"] = rng.choice([0, 3, "2", 2.0, None, -1])
    _write_meta(d, meta)
    return change


def lying_header(rng: random.Random, d: Path) -> str:
    data = bytearray(weights_path(d).read_bytes())
    size = int.from_bytes(data[:8], "little")
    change = rng.choice(["header size huge", "header size short", "offsets", "not json", "dtype"])
    if change == "header size huge":
        data[:8] = (2**63).to_bytes(8, "little")
    elif change == "header size short":
        data[:8] = (size // 2).to_bytes(8, "little")
    else:
        header = data[8 : 8 + size].decode()
        if change == "offsets":
            header = header.replace('"data_offsets":[0,', '"data_offsets":[999999999,', 1)
        elif change == "not json":
            header = header[: len(header) // 2] + "}" * (len(header) - len(header) // 2)
        else:
            header = header.replace('"F32"', '"Q99"', 1)
        data[8 : 8 + size] = header.encode()[:size].ljust(size)
    _set_weights(d, bytes(data))
    return change


def tensor_change(rng: random.Random, d: Path) -> str:
    tensors = _tensors(d)
    key = rng.choice(sorted(tensors))
    change = rng.choice(["drop", "add", "reshape", "int", "half", "bool", "nan", "inf", "rename", "epoch", "empty", "scalar"])
    if change == "drop":
        del tensors[key]
    elif change == "add":
        tensors[f"{key.split('/')[0]}/extra.weight"] = torch.zeros(3)
    elif change == "reshape":
        tensors[key] = torch.zeros(tensors[key].numel() + 1)
    elif change in ("int", "half", "bool"):
        tensors[key] = tensors[key].to({"int": torch.int64, "half": torch.float16, "bool": torch.bool}[change])
    elif change in ("nan", "inf"):
        tensors[key] = torch.full_like(tensors[key], float(change))
    elif change == "rename":
        tensors[f"garbage{rng.randint(0, 9)}"] = tensors.pop(key)
    elif change == "epoch":
        tensors = {f"epoch999/{k.split('/', 1)[1]}": v for k, v in tensors.items()}
    elif change == "empty":
        tensors = {}
    else:
        tensors[key] = torch.tensor(1.0)
    _set_weights(d, safetensors_bytes(tensors))
    return f"{change} {key}"


def network_change(rng: random.Random, d: Path) -> str:
    meta = _meta(d)
    net = meta["network"]
    change = rng.choice(["giant trunk", "input", "outputs", "arch", "options", "nested", "user module"])
    if change == "giant trunk":
        net["trunk"] = [10**9, 10**9]
    elif change == "input":
        net["input_dim"] = net["input_shape"] = rng.choice([[10**12], [0], [3, 2], "x", None])
    elif change == "outputs":
        net["output_dims"] = {k: v + 1 for k, v in net["output_dims"].items()}
    elif change == "arch":
        meta["arch"] = rng.choice(["nope", "", "HPS", "../hps"])
    elif change == "options":
        net[rng.choice(["activation", "norm", "dropout", "n_experts", "unknown_option"])] = rng.choice(WRONG)
    elif change == "nested":
        meta["tasks"] = json.loads("[" * 50 + "]" * 50)
    else:
        net["user_modules"] = {"trunk_module": "evil.module"}
    _write_meta(d, meta)
    return change


def deep_json(rng: random.Random, d: Path) -> str:
    depth = rng.choice([10_000, 100_000])
    (d / META_FILE).write_text('{"format": "polytask-model", "x": ' + "[" * depth + "]" * depth + "}")
    return f"depth {depth}"


def bad_text(rng: random.Random, d: Path) -> str:
    raw = (d / META_FILE).read_bytes()
    change = rng.choice(["invalid utf-8", "bom", "huge number", "nul"])
    if change == "invalid utf-8":
        raw = raw.replace(b'"tasks"', b'"ta\xff\xfesks"', 1)
    elif change == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif change == "huge number":
        raw = raw.replace(b'"best_epoch": {', b'"huge": ' + b"9" * 5000 + b', "best_epoch": {', 1)
    else:
        raw = raw.replace(b'"arch"', b'"ar\x00ch"', 1)
    (d / META_FILE).write_bytes(raw)
    return change


MUTATIONS: list[Callable[..., str]] = [wrong_type, wrong_type, wrong_type, missing_key, missing_key, truncated, garbage,
                                       flipped, oversized, special_file, special_file, pickled, lying_entry, lying_header,
                                       tensor_change, tensor_change, network_change, deep_json, bad_text]


class Hang(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Hang


def test_damaged_and_malicious_model_directories_give_one_line_errors(saved, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    frame, bases = saved
    rng = random.Random(18)
    marker = tmp_path / "UNPICKLED"
    outcomes: dict[str, int] = {"loaded": 0, "refused": 0}
    failures: list[str] = []
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for case in range(CASES):
            mutation = MUTATIONS[case % len(MUTATIONS)]
            d = tmp_path / f"case{case}"
            shutil.copytree(rng.choice(bases), d)
            what = mutation(rng, d, marker) if mutation is pickled else mutation(rng, d)
            label = f"case {case} {mutation.__name__} ({what})"
            signal.alarm(SECONDS_PER_CASE)
            try:
                pt.load(d).predict(frame)
                outcomes["loaded"] += 1
            except pt.PolytaskError as exc:
                outcomes["refused"] += 1
                message = str(exc)
                if "\n" in message or str(d) not in message:
                    failures.append(f"{label}: message not one line naming the directory: {message}")
            except Hang:
                failures.append(f"{label}: hung for {SECONDS_PER_CASE} s")
            except Exception as exc:  # noqa: BLE001 -- the point: no other type may escape
                failures.append(f"{label}: {type(exc).__name__}: {str(exc)[:200]}")
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert not failures, "\n".join(failures)
    assert not marker.exists(), "a pickle payload was unpickled"
    assert outcomes["refused"] >= CASES * 0.6 and sum(outcomes.values()) == CASES, outcomes
