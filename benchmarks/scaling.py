"""Data-parallel step time: one process against N processes (torchrun) on the same global batch.

Run:  python benchmarks/scaling.py 1 OUT.json            (one process)
      torchrun --standalone --nproc-per-node 2 benchmarks/scaling.py 2 OUT.json
      python benchmarks/scaling.py 1 OUT.json bf16          (a precision; "compile" adds --compile;
      python benchmarks/scaling.py 1 OUT.json fp32 compile ew,upgrad   a list of methods limits them)
Each process trains a hard-sharing network (50 features, trunk 256-128, 4 regression tasks)
for a few epochs on seeded data; rank 0 records the median epoch time (process CPU time is
not comparable across processes, so this is wall time) for each balancer and mode, with the
global batch held at 512 rows (per-process batch 512 / N). Figures in docs/SCALING.md.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from polytask.data.tensors import TaskTensors
from polytask.models import HardSharing
from polytask.tasks import Task
from polytask.training import Callback, Trainer
from polytask.training.config import TrainConfig
from polytask.training.distributed import is_main_process

METHODS = [("ew", {}), ("uw", {}), ("upgrad", {"mode": "representation"}), ("upgrad", {"mode": "exact"}), ("pcgrad", {})]
ROWS, FEATURES, TASKS, GLOBAL_BATCH, EPOCHS = 16384, 50, 4, 512, 4


class EpochClock(Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: dict) -> None:
        self.times.append(time.perf_counter() - self.start)


def data(n: int, seed: int) -> TaskTensors:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, FEATURES, generator=g)
    y = x @ torch.randn(FEATURES, TASKS, generator=g) + torch.randn(n, TASKS, generator=g)
    names = [f"t{i}" for i in range(TASKS)]
    return TaskTensors(x, {t: y[:, i : i + 1] for i, t in enumerate(names)}, {t: torch.ones(n, 1, dtype=torch.bool) for t in names})


def main(processes: int, out: str, precision: str = "fp32", compile: bool = False, only: str = "") -> None:
    torch.set_num_threads(1)
    tasks = [Task(f"t{i}") for i in range(TASKS)]
    train, val = data(ROWS, 1), data(1024, 2)
    rows = {}
    for name, options in METHODS:
        if only and name not in only.split(","):
            continue
        torch.manual_seed(0)
        net = HardSharing(FEATURES, {t.name: 1 for t in tasks}, trunk=(256, 128))
        clock = EpochClock()
        config = TrainConfig(epochs=EPOCHS, batch_size=GLOBAL_BATCH // processes, balancer=name, balancer_options=options,
                             early_stopping="none", val_metrics=False, threads=1, precision=precision, compile=compile)
        Trainer(net, tasks, config=config, callbacks=[clock]).fit(train, val)
        label = name + (f" ({options['mode']})" if options else "")
        rows[label] = statistics.median(clock.times[1:])  # the first epoch warms up
    if is_main_process():
        json.dump({"processes": processes, "precision": precision, "compile": compile, "epoch_seconds": rows, "rows": ROWS, "global_batch": GLOBAL_BATCH}, open(out, "w"), indent=1)
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    args = sys.argv[1:]
    main(int(args[0]), args[1], args[2] if len(args) > 2 else "fp32", len(args) > 3 and args[3] == "compile",
         args[4] if len(args) > 4 else "")
