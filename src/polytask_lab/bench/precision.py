"""Mixed precision and compilation in one process: an epoch under ``precision="bf16"`` and
under ``compile=True`` against the same epoch in fp32, in process CPU time, single-threaded.

The network and data follow ``benchmarks/scaling.py``: 50 features, a 256-128 ReLU trunk,
4 regression tasks, batch 512, here on 4,096 training rows (8 steps an epoch). For each
balancer (and mode) four trainers start from the same weights: ``fp32``, ``fp32 (control)``
(a second identical one: its ratio is the run's noise), ``bf16`` and ``compile``. Each takes
one untimed epoch first (the compiled one compiles there: its CPU and wall seconds are reported
apart),
then every round runs one epoch of each in a new shuffled order; a candidate's figure is the
median over rounds of its epoch time ÷ the fp32 epoch time of the same round, with the range.

Agreement: after the timed epochs every trainer has taken the same steps on the same batches,
so ``max |theta - theta_fp32| / max |theta_fp32|`` over the shared parameters measures how far
bf16 and compilation moved the model (bf16 rounds every matrix product to 8 bits of mantissa;
a compiled graph may reorder sums).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from polytask.data.tensors import TaskTensors
from polytask.models import HardSharing
from polytask.tasks import Task
from polytask.training import Trainer
from polytask.training.config import TrainConfig

ROWS, FEATURES, TASKS, BATCH, TRUNK = 4096, 50, 4, 512, (256, 128)
METHODS: tuple[tuple[str, dict[str, Any]], ...] = (("ew", {}), ("upgrad", {"mode": "representation"}),
                                                   ("upgrad", {"mode": "exact"}))
CANDIDATES: dict[str, dict[str, Any]] = {"fp32": {}, "fp32 (control)": {}, "bf16": {"precision": "bf16"},
                                         "compile": {"compile": True}}


def _data(seed: int) -> TaskTensors:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(ROWS, FEATURES, generator=g)
    y = x @ torch.randn(FEATURES, TASKS, generator=g) + torch.randn(ROWS, TASKS, generator=g)
    names = [f"t{i}" for i in range(TASKS)]
    return TaskTensors(x, {t: y[:, i : i + 1] for i, t in enumerate(names)}, {t: torch.ones(ROWS, 1, dtype=torch.bool) for t in names})


def _trainer(balancer: str, options: dict[str, Any], rounds: int, extra: dict[str, Any]) -> Trainer:
    torch.manual_seed(0)
    tasks = [Task(f"t{i}") for i in range(TASKS)]
    net = HardSharing(FEATURES, {t.name: 1 for t in tasks}, trunk=TRUNK)
    config = TrainConfig(epochs=rounds + 2, batch_size=BATCH, balancer=balancer, balancer_options=options, seed=0,
                         early_stopping="none", val_metrics=False, threads=1, **extra)
    return Trainer(net, tasks, config=config)


def _cpu(fn: Callable[[], Any]) -> float:
    started = time.process_time()
    fn()
    return time.process_time() - started


def _cpu_and_wall(fn: Callable[[], Any]) -> tuple[float, float]:
    """Process CPU and wall seconds (compilation runs part of its work in child processes,
    which only the wall clock sees)."""
    wall = time.perf_counter()
    cpu = _cpu(fn)
    return cpu, time.perf_counter() - wall


def _shared_distance(a: Trainer, b: Trainer) -> float:
    """``max |a - b| / max |b|`` over the shared (trunk) parameters."""
    pa = torch.cat([p.detach().flatten() for p in a.network.shared_parameters()])
    pb = torch.cat([p.detach().flatten() for p in b.network.shared_parameters()])
    return float((pa - pb).abs().max() / pb.abs().max())


def run_method(balancer: str, options: dict[str, Any], rounds: int, seed: int = 0) -> dict[str, Any]:
    """Per-round epoch CPU seconds and ratios of the four candidates for one balancer."""
    train = _data(1)
    trainers = {label: _trainer(balancer, options, rounds, extra) for label, extra in CANDIDATES.items()}
    packed = {label: t.pack(train) for label, t in trainers.items()}
    first = {label: _cpu_and_wall(lambda t=t, label=label: t.run_epoch(packed[label], None)) for label, t in trainers.items()}
    samples: dict[str, list[float]] = {label: [] for label in trainers}
    order = random.Random(seed)
    for _ in range(rounds):
        labels = list(trainers)
        order.shuffle(labels)
        for label in labels:
            samples[label].append(_cpu(lambda label=label: trainers[label].run_epoch(packed[label], None)))
    out: dict[str, Any] = {"method": balancer + (f" ({options['mode']})" if options else ""), "candidates": {}}
    for label, values in samples.items():
        ratios = [v / r for v, r in zip(values, samples["fp32"])]
        out["candidates"][label] = {"epoch_cpu_s": values, "first_epoch_cpu_s": first[label][0],
                                    "first_epoch_wall_s": first[label][1],
                                    "vs_fp32": statistics.median(ratios), "vs_fp32_range": [min(ratios), max(ratios)],
                                    "distance_to_fp32": _shared_distance(trainers[label], trainers["fp32"])}
    return out


def run_precision(rounds: int = 9, methods: tuple[tuple[str, dict[str, Any]], ...] = METHODS) -> dict[str, Any]:
    """The precision section of the performance document."""
    torch.set_num_threads(1)
    return {"rows": ROWS, "features": FEATURES, "tasks": TASKS, "batch": BATCH, "trunk": list(TRUNK), "rounds": rounds,
            "cpu_bf16": _cpu_has_bf16(), "methods": [run_method(name, options, rounds) for name, options in methods]}


def _cpu_has_bf16() -> bool:
    """Whether the CPU advertises bfloat16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
