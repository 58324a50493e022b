"""Atomic writes, bounded reads of untrusted files and pickle-free state serialization
(safetensors + JSON).

Writes go to a temporary file beside the target (created with mode ``0o666`` so the umask
applies, as for any ``open``), are fsynced and renamed over the target: a reader sees the old
file or the new one, never a part. Reads of files a user may have handed us
(:func:`read_regular_file`) accept regular files only, never follow a symbolic link, never block
on a FIFO or a device and refuse a file over a size limit before reading it.

Nested states (dicts and lists holding tensors and plain values, such as an optimizer's
``state_dict``) are split into a flat ``{path: tensor}`` map for safetensors and a JSON tree in
which each tensor is replaced by ``{"__tensor__": path}``; loading reverses it. Nothing is ever
unpickled.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import stat
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as _safetensors_load
from safetensors.torch import save as _safetensors_save

from polytask.errors import PolytaskError

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def temporary_name(path: Path, token: str | None = None) -> Path:
    """``.<name>.<token>.tmp`` beside ``path`` (``token``: random unless given)."""
    return path.with_name(f".{path.name}.{token or secrets.token_hex(8)}.tmp")


def atomic_write_bytes(path: str | Path, data: bytes, token: str | None = None) -> None:
    """Write ``data`` to a temporary file beside ``path`` (:func:`temporary_name`), fsync it,
    then rename it over ``path``. The file's mode honours the umask."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, token)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_directory(directory: str | Path) -> None:
    """Make the renames inside ``directory`` durable (a no-op where directories cannot be synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_regular_file(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes.

    A symbolic link, a FIFO, a device or a directory is refused without being read (the open
    never follows a link and never blocks), and so is a file larger than ``limit`` (by its size
    before reading, and again while reading, should it grow). ``FileNotFoundError`` passes
    through; every other failure is a one-line :class:`PolytaskError` naming the file."""
    path = Path(path)
    try:
        if path.is_symlink():
            raise PolytaskError(f"'{path}' is a symbolic link; only regular files are read")
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PolytaskError(f"'{path}' cannot be opened ({exc.strerror or exc})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise PolytaskError(f"'{path}' is not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise PolytaskError(f"'{path}' is too large ({info.st_size} bytes, at most {limit} are read)")
        chunks, total = [], 0
        while chunk := os.read(fd, min(1 << 24, limit + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise PolytaskError(f"'{path}' is too large (it grew past {limit} bytes while being read)")
        return b"".join(chunks)
    except OSError as exc:
        raise PolytaskError(f"'{path}' cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(fd)


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # "nan", "inf": JSON has no literal for them
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return _json_safe(obj.item())
    return obj


def clean_json(obj: Any) -> Any:
    """NaN and inf become null (and NumPy/torch scalars plain numbers) so the output is valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:
        return clean_json(obj.item())
    return obj


def atomic_write_json(path: str | Path, obj: Any, token: str | None = None) -> None:
    atomic_write_bytes(path, (json.dumps(_json_safe(obj), indent=2, sort_keys=False) + "\n").encode(), token)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def flatten_state(state: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], Any]:
    """Split a nested state into ``(tensors, json_tree)``."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[path] = obj.detach().cpu().contiguous()
            return {"__tensor__": path}
        if isinstance(obj, dict):
            return {"__dict__": [[walk_key(k), walk(v, f"{path}/{k}")] for k, v in obj.items()]}
        if isinstance(obj, (list, tuple)):
            return {"__list__": [walk(v, f"{path}/{i}") for i, v in enumerate(obj)], "tuple": isinstance(obj, tuple)}
        if isinstance(obj, float) and not math.isfinite(obj):
            return {"__float__": str(obj)}
        return obj

    def walk_key(k: Any) -> Any:
        return k if isinstance(k, (str, int, float, bool)) or k is None else str(k)

    return tensors, walk(state, prefix or "state")


def unflatten_state(tree: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten_state`."""
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return tensors[tree["__tensor__"]]
        if "__dict__" in tree:
            return {k: unflatten_state(v, tensors) for k, v in tree["__dict__"]}
        if "__list__" in tree:
            items = [unflatten_state(v, tensors) for v in tree["__list__"]]
            return tuple(items) if tree.get("tuple") else items
        if "__float__" in tree:
            return float(tree["__float__"])
    return tree


def tensors_to_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file's bytes (tensors moved to the CPU, made contiguous)."""
    return _safetensors_save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata)


def tensors_from_bytes(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, metadata)`` of a safetensors file's bytes; ``ValueError`` when they are not
    one (the header is checked before safetensors reads it)."""
    if len(data) < 8:
        raise ValueError("shorter than a safetensors header")
    (size,) = struct.unpack("<Q", data[:8])
    if size > len(data) - 8:
        raise ValueError("the header is longer than the file")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ValueError("the header is not JSON") from None
    metadata = header.get("__metadata__", {}) if isinstance(header, dict) else None
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("the header's metadata is not a map of strings")
    try:
        tensors = _safetensors_load(data)
    except Exception as exc:  # safetensors raises its own error type for every damaged file
        raise ValueError(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    return tensors, metadata


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Atomically write a safetensors file."""
    atomic_write_bytes(path, tensors_to_bytes(tensors, metadata))


def load_tensors(path: str | Path, limit: int = 1 << 40) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (a regular file of at most ``limit`` bytes)."""
    try:
        return tensors_from_bytes(read_regular_file(path, limit))[0]
    except ValueError as exc:
        if isinstance(exc, PolytaskError):
            raise
        raise PolytaskError(f"'{path}' is not a safetensors file ({exc})") from None
