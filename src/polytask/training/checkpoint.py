"""Resumable training checkpoints: pure dict I/O, written as one unit.

A checkpoint is a single file, ``DIR/checkpoint.safetensors``: every tensor of the trainer's
state (:meth:`polytask.training.Trainer.state_dict`) as a safetensors entry, and the rest of
the state plus a small header (the epoch, the training options and a fingerprint of the
training data) as JSON in the file's own metadata. The file is written beside its final name
and renamed over it, so a reader finds the previous checkpoint or the new one, whole, never a
mixture: a crash while writing leaves the previous checkpoint in place.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from polytask.errors import PolytaskError
from polytask.serialization import (
    atomic_write_bytes, flatten_state, read_regular_file, tensors_from_bytes, tensors_to_bytes, unflatten_state,
)

CHECKPOINT_FILE = "checkpoint.safetensors"
FORMAT = "polytask-checkpoint"
FORMAT_VERSION = 2
#: The most bytes read from a checkpoint file.
MAX_CHECKPOINT_BYTES = 16 << 30


def checkpoint_path(directory: str | Path) -> Path:
    return Path(directory) / CHECKPOINT_FILE


def has_checkpoint(directory: str | Path | None) -> bool:
    return directory is not None and checkpoint_path(directory).is_file()


def save_checkpoint(state: dict[str, Any], directory: str | Path, header: dict[str, Any]) -> Path:
    """Write ``state`` (nested dicts/lists of tensors and JSON-able values) and ``header``
    (JSON-able: epoch, options, data fingerprint) to ``directory`` as one file, atomically."""
    path = checkpoint_path(directory)
    tensors, tree = flatten_state(state)
    meta = {"format": FORMAT, "format_version": str(FORMAT_VERSION),
            "header": json.dumps(header), "state": json.dumps(tree)}
    try:
        atomic_write_bytes(path, tensors_to_bytes(tensors, meta))
    except OSError as exc:  # a full disk: the previous checkpoint is untouched
        raise PolytaskError(f"checkpoint '{path}' could not be written ({exc.strerror or exc}); "
                            "the previous one is left as it was") from None
    return path


def load_checkpoint(directory: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(header, state)`` of the checkpoint in ``directory``; a PolytaskError names the file
    when it is missing, damaged or not a polytask checkpoint (a regular file, read with a size
    limit, as a model directory's files are)."""
    path = checkpoint_path(directory)
    try:
        data = read_regular_file(path, MAX_CHECKPOINT_BYTES)
    except FileNotFoundError:
        raise PolytaskError(f"no checkpoint to resume from in '{directory}' ('{CHECKPOINT_FILE}' is missing)") from None
    try:
        tensors, meta = tensors_from_bytes(data)
        if meta.get("format") != FORMAT:
            raise PolytaskError(f"'{path}' is not a polytask checkpoint")
        if int(meta.get("format_version", "0")) > FORMAT_VERSION:
            raise PolytaskError(f"checkpoint '{path}' was written by a newer polytask")
        header = json.loads(meta["header"])
        state = unflatten_state(json.loads(meta["state"]), tensors)
        if not isinstance(header, dict) or not isinstance(state, dict):
            raise ValueError("header or state is not a map")
    except PolytaskError:
        raise
    except Exception as exc:  # damaged JSON or tensors: any error type
        raise PolytaskError(f"checkpoint '{path}' is damaged: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return header, state


def checkpoint_epoch(directory: str | Path) -> int:
    """The last completed epoch recorded in a checkpoint."""
    return int(load_checkpoint(directory)[0]["epoch"])


def fingerprint(*tensors: torch.Tensor) -> str:
    """A SHA-256 of tensors' shapes, dtypes and bytes: the same data gives the same string."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)}{t.dtype};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
