"""Resumable training checkpoints: network, optimizer, balancer state and epoch.

Layout of a checkpoint directory: ``checkpoint.safetensors`` (every tensor) and
``checkpoint.json`` (the rest of the state). Both are written atomically; the JSON, written
last, names the epoch, so a crash between the two writes leaves the previous pair readable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polytask.errors import PolytaskError
from polytask.serialization import atomic_write_json, flatten_state, load_tensors, save_tensors, unflatten_state

if TYPE_CHECKING:
    from polytask.training.trainer import Trainer


def save_checkpoint(trainer: "Trainer", directory: str | Path, epoch: int) -> None:
    directory = Path(directory)
    state = {
        "network": trainer.network.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "balancer": trainer.balancer.state_dict(),  # an nn.Module's: parameters and extra state
        "step": trainer.step,
        "history": trainer.history,
        "stopping": trainer.stopping.state_dict(),
    }
    tensors, tree = flatten_state(state)
    save_tensors(directory / "checkpoint.safetensors", tensors)
    atomic_write_json(directory / "checkpoint.json", {"epoch": epoch, "state": tree})


def load_checkpoint(directory: str | Path) -> tuple[int, dict[str, Any]]:
    """``(epoch, state)`` of a checkpoint directory."""
    directory = Path(directory)
    meta, weights = directory / "checkpoint.json", directory / "checkpoint.safetensors"
    for f in (meta, weights):
        if not f.exists():
            raise PolytaskError(f"checkpoint '{directory}' is incomplete: '{f.name}' is missing")
    try:
        doc = json.loads(meta.read_text())
        tensors = load_tensors(weights)
        return int(doc["epoch"]), unflatten_state(doc["state"], tensors)
    except (json.JSONDecodeError, KeyError, OSError, Exception) as exc:
        if isinstance(exc, PolytaskError):
            raise
        raise PolytaskError(f"checkpoint '{directory}' is corrupted: {exc}") from None
