"""Training runs for the data-parallel tests (tests/test_distributed.py).

``train(spec, batch_size)`` trains a tiny hard-sharing network in float64 on a fixed seeded
problem with missing labels and returns what the tests compare. Run as a script under torchrun
(``torchrun --nproc-per-node 2 tests/distributed_run.py OUT``) every process trains every
spec of :data:`SPECS` in one process group and saves its results in ``OUT/rank{r}.pt``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from polytask.data.tensors import TaskTensors
from polytask.models import HardSharing
from polytask.tasks import Task
from polytask.training import CheckpointCallback, Trainer
from polytask.training.callbacks import Callback
from polytask.training.config import TrainConfig

#: (balancer, options) pairs: the issue's list, the seeded methods, and the methods that ask
#: the reducer for per-task gradients themselves.
SPECS: list[tuple[str, dict[str, Any]]] = [
    ("ew", {}), ("uw", {}), ("dwa", {}), ("famo", {}),
    ("upgrad", {"mode": "exact"}), ("upgrad", {"mode": "representation"}),
    ("mgda", {}), ("pcgrad", {}), ("nash_mtl", {"update_weights_every": 2}),
    ("rlw", {}), ("graddrop", {"mode": "representation"}), ("graddrop", {"mode": "exact"}),
    ("db_mtl", {}), ("gradnorm", {}),
]
#: Trained on 129 rows as well: each epoch ends with a global batch of one row, so one process
#: has an empty shard.
EMPTY_SHARD_SPECS = [("ew", {}), ("upgrad", {"mode": "exact"}), ("upgrad", {"mode": "representation"}),
                     ("graddrop", {"mode": "representation"}), ("gradnorm", {})]
#: Trained with task ``c`` labelled on three rows only: in most batches it is absent, and in
#: a batch with one of them it is present on one process's shard alone (global presence).
PRESENCE_SPECS = [("mgda", {}), ("famo", {}), ("gradnorm", {}), ("db_mtl", {}), ("upgrad", {"mode": "representation"})]
SPARSE_ROWS = (5, 70, 140)
TASKS = [Task("a"), Task("b"), Task("c", kind="binary")]


def key(name: str, options: dict[str, Any]) -> str:
    return name + "".join(f"-{v}" for v in options.values())


def problem(n: int, seed: int, sparse: bool = False) -> TaskTensors:
    """Three related tasks on five features, about a fifth of the labels missing (``sparse``:
    task ``c`` labelled on the rows :data:`SPARSE_ROWS` only)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    w = torch.randn(5, 3, generator=g, dtype=torch.float64)
    y = x @ w + 0.1 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    targets = {"a": y[:, :1], "b": y[:, 1:2], "c": (y[:, 2:] > 0).double()}
    masks = {t: torch.rand(n, 1, generator=g) > 0.2 for t in targets}
    if sparse:
        masks["c"] = torch.zeros(n, 1, dtype=torch.bool)
        masks["c"][list(SPARSE_ROWS)] = True
    return TaskTensors(x, targets, masks)


def train(name: str, options: dict[str, Any], batch_size: int, epochs: int = 3, dropout: float = 0.0,
          callbacks: Sequence[Callback] = (), resume_from: Path | None = None, rows: int = 150, sparse: bool = False) -> dict[str, Any]:
    """Train from the same start; the network's parameters and the history."""
    torch.manual_seed(0)
    net = HardSharing(5, {"a": 1, "b": 1, "c": 1}, trunk=(8, 6), head_hidden=(4,), dropout=dropout).double()
    config = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.02, seed=3, balancer=name, balancer_options=options,
                         early_stopping="joint", patience=5, val_metrics=False)
    trainer = Trainer(net, TASKS, config=config, callbacks=callbacks)
    result = trainer.fit(problem(rows, 1, sparse), problem(41, 2), resume_from=resume_from)
    return {
        "params": {k: v.detach().clone() for k, v in net.state_dict().items()},
        "train_loss": [h["train_loss"] for h in result.history],
        "val_loss": [h["val_loss"] for h in result.history],
        "weights": [h["weights"] for h in result.history],
        "processes": trainer.world_size,
    }


def main(out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    results = {key(n, o): train(n, o, batch_size=32) for n, o in SPECS}
    results.update({"129-" + key(n, o): train(n, o, batch_size=32, rows=129) for n, o in EMPTY_SHARD_SPECS})
    results.update({"sparse-" + key(n, o): train(n, o, batch_size=32, sparse=True) for n, o in PRESENCE_SPECS})
    # resume: 2 epochs with a checkpoint (rank 0 writes it), then on to 4, against 4 at once
    ckpt = Path(out) / "checkpoint"
    results["uninterrupted"] = train("famo", {}, 32, epochs=4, dropout=0.2)
    train("famo", {}, 32, epochs=2, dropout=0.2, callbacks=[CheckpointCallback(ckpt)])
    dist.barrier()
    results["resumed"] = train("famo", {}, 32, epochs=4, dropout=0.2, resume_from=ckpt)
    torch.save(results, Path(out) / f"rank{dist.get_rank()}.pt")
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
