"""The model directory: weights in safetensors, everything else in JSON; never a pickle.

This module knows directories, JSON and tensors only; what the JSON and the tensors mean is
the model's own business (:meth:`polytask.fitted.FittedModel.to_files`).

Layout (format 2)::

    DIR/model.json                    the commit point: the format marker, library versions, the
                                      model's description, the weights file's name, size and
                                      SHA-256, and the other entries polytask wrote here
    DIR/weights-<sha>.safetensors     one tensor per (snapshot epoch, parameter), "epoch{e}/{name}";
                                      named by (the start of) its SHA-256, never rewritten
    DIR/<files>, DIR/<models>/        what the writer adds (``polytask fit``: history.csv,
                                      report.json and the STL baseline, itself a model directory)

A directory is a polytask model when its ``model.json`` carries the format marker, whatever
else it holds; the files polytask owns in it are the ones that ``model.json`` lists (format 1,
which listed none, owned the fixed names of :data:`LEGACY_ENTRIES`). Everything else in the
directory is the user's and is never replaced or deleted.

Saving (:func:`save_model_files`): (1) ``model.json`` is rewritten with the names about to be
written under ``pending``, (2) the new weights (under a new name), the extra files (each by an
atomic rename) and the sub-models are written, (3) the new ``model.json`` replaces the old one
by one rename (the commit), listing under ``pending`` the old model's entries the new one does
not use, (4) those are removed and ``model.json`` is written once more without ``pending``. A
crash before (3) leaves the old model whole, after it the new one; whatever a crash left
behind is listed under ``pending``, so the next save removes it. Reading (:func:`read_model_files`) takes
``model.json``, then the weights file it names, and checks their size and SHA-256: a reader
racing a writer either holds the old weights (opened before they were removed) or finds them
gone or different and starts again from the new ``model.json``; it never mixes two models.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from polytask.errors import PolytaskError
from polytask.serialization import (
    atomic_write_bytes, atomic_write_json, fsync_directory, read_regular_file, tensors_from_bytes, tensors_to_bytes,
)
from polytask.version import polytask_version

FORMAT = "polytask-model"
FORMAT_VERSION = 2
META_FILE = "model.json"
#: The weights file of format 1 (a fixed name, no checksum).
LEGACY_WEIGHTS_FILE = "weights.safetensors"
#: What format 1 wrote into a model directory: files, then sub-model directories.
LEGACY_ENTRIES = (("weights.safetensors", "history.csv", "report.json"), ("stl",))
#: The most bytes read from ``model.json`` and from a weights file.
MAX_META_BYTES = 64 << 20
MAX_WEIGHTS_BYTES = 16 << 30
#: How often a reader starts again when a writer replaced the model under it.
READ_ATTEMPTS = 100

#: ``write(path)``: writes one extra file of a model directory at ``path``.
FileWriter = Callable[[Path], None]
_WEIGHTS_NAME = re.compile(r"weights-[0-9a-f]{16}\.safetensors")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def versions() -> dict[str, str]:
    import numpy
    import pandas
    import sklearn

    return {
        "polytask": polytask_version(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "scikit-learn": sklearn.__version__,
    }


@dataclass
class ModelFiles:
    """One model directory to write: the description, the tensors, extra files by name and
    sub-model directories by name."""

    meta: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    files: dict[str, FileWriter] = field(default_factory=dict)
    models: dict[str, "ModelFiles"] = field(default_factory=dict)


# -- what is there -----------------------------------------------------------------------------
def plain_name(name: Any) -> bool:
    """A file name of its own (no directory part, not hidden, not ``model.json``)."""
    return (isinstance(name, str) and bool(name) and not name.startswith(".") and name != META_FILE
            and "/" not in name and "\\" not in name and "\0" not in name)


def _names(value: Any) -> list[str]:
    return [n for n in value if plain_name(n)] if isinstance(value, list) else []


def owned_entries(meta: Mapping[str, Any] | None) -> tuple[set[str], set[str]]:
    """``(files, models)`` that polytask wrote beside ``model.json`` (``meta``), including those
    of an interrupted save (``pending``)."""
    if meta is None:
        return set(), set()
    pending = meta.get("pending") if isinstance(meta.get("pending"), dict) else {}
    if meta.get("format_version") == 1:
        files, models = set(LEGACY_ENTRIES[0]), set(LEGACY_ENTRIES[1])
    else:
        weights = meta.get("weights") if isinstance(meta.get("weights"), dict) else {}
        files = {*_names(meta.get("files")), *_names([weights.get("file")])}
        models = set(_names(meta.get("models")))
    return files | set(_names(pending.get("names"))), models


def _pending_tokens(meta: Mapping[str, Any] | None) -> list[str]:
    pending = meta.get("pending") if meta is not None and isinstance(meta.get("pending"), dict) else {}
    tokens = pending.get("tokens")
    return [t for t in tokens if isinstance(t, str) and re.fullmatch(r"[0-9a-f]{16}", t)] if isinstance(tokens, list) else []


def _parse_json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        detail = getattr(exc, "msg", None) or type(exc).__name__
        raise PolytaskError(f"{where}: '{META_FILE}' is not valid JSON ({detail})") from None


def existing_model(directory: Path, option: str = "model directory") -> dict[str, Any] | None:
    """The marker-bearing ``model.json`` of ``directory`` (``None`` when the directory is absent
    or empty); a PolytaskError when it holds anything else, so nothing of the user's is replaced."""
    where = f"{option} '{directory}'"
    if not os.path.lexists(directory):
        return None
    if not directory.is_dir():
        raise PolytaskError(f"{where} exists and is not a directory")
    try:
        raw = read_regular_file(directory / META_FILE, MAX_META_BYTES)
    except FileNotFoundError:
        if _not_empty(directory, where):
            raise PolytaskError(f"{where} is not empty and holds no polytask model; refusing to write a model into it "
                                "(choose a new or empty directory)") from None
        return None
    except PolytaskError as exc:
        raise PolytaskError(f"{where} cannot be replaced: {exc}") from None
    meta = _parse_json(raw, f"{where} cannot be replaced")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PolytaskError(f"{where} holds a '{META_FILE}' that is not a polytask model's; refusing to replace it")
    return meta


def _not_empty(directory: Path, where: str) -> bool:
    try:
        return any(directory.iterdir())
    except OSError as exc:
        raise PolytaskError(f"{where} cannot be read ({exc.strerror or exc})") from None


def _check_names(directory: Path, files: Iterable[str], models: Iterable[str], current: dict[str, Any] | None,
                 option: str) -> None:
    """Every entry about to be written is free or polytask's own (sub-models: free, empty or a model)."""
    owned_files, owned_models = owned_entries(current)
    for name in [*files, *models]:
        if not plain_name(name):
            raise PolytaskError(f"'{name}' cannot be the name of a file in a model directory")
    for name in files:
        path = directory / name
        if os.path.lexists(path) and (name not in owned_files or path.is_dir() or path.is_symlink()):
            raise PolytaskError(f"{option} '{directory}': '{name}' there was not written by polytask; "
                                "refusing to replace it")
    for name in models:
        path = directory / name
        if path.is_symlink() or (os.path.lexists(path) and name not in owned_models and not path.is_dir()):
            raise PolytaskError(f"{option} '{directory}': '{name}' there was not written by polytask; "
                                "refusing to replace it")
        existing_model(path, option)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _writable(path: Path, option: str, start: Path | None = None) -> None:
    """``path`` can be created or written: the nearest existing one of ``start`` (default
    ``path``) and its ancestors is a writable directory."""
    probe = _absolute(start or path)
    while not os.path.lexists(probe):
        probe = probe.parent
    if not probe.is_dir():
        raise PolytaskError(f"{option} '{path}' cannot be created: '{probe}' is not a directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise PolytaskError(f"{option} '{path}' cannot be written: '{probe}' is not writable")


def check_output_directory(directory: str | Path, files: Iterable[str] = (), models: Iterable[str] = (),
                           option: str = "model directory") -> None:
    """Refuse, before any work, a model directory that cannot be written: not a directory,
    holding something that is not a polytask model, holding a file of the user's under a name
    polytask would write (``files``, ``models``), or not writable."""
    directory = Path(directory)
    current = existing_model(directory, option)
    _check_names(directory, files, models, current, option)
    _writable(directory, option)


def check_output_paths(model_dir: str | Path, files: Iterable[str] = (), models: Iterable[str] = (), *,
                       directories: Iterable[tuple[str, str | Path]] = (),
                       targets: Iterable[tuple[str, str | Path]] = ()) -> None:
    """All output paths of a run, checked before it starts: the model directory
    (:func:`check_output_directory`, as ``--out``), other directories and files with the option
    that names them (``("--checkpoint-dir", path)``); none of them may lie inside the model
    directory (it would stop being a model directory before the model is written)."""
    model_dir = Path(model_dir)
    check_output_directory(model_dir, files, models, option="--out")
    inside = _absolute(model_dir)
    for option, path, is_dir in [*((o, Path(p), True) for o, p in directories), *((o, Path(p), False) for o, p in targets)]:
        if os.path.lexists(path) and path.is_dir() != is_dir:
            raise PolytaskError(f"{option} '{path}' exists and is {'not ' if is_dir else ''}a directory")
        if _absolute(path) == inside or inside in _absolute(path).parents:
            raise PolytaskError(f"{option} '{path}' is inside --out '{model_dir}': choose a place outside the model directory")
        _writable(path, option, None if is_dir else path.parent)


# -- writing -----------------------------------------------------------------------------------
def save_model_files(directory: str | Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor],
                     files: Mapping[str, FileWriter] | None = None,
                     models: Mapping[str, ModelFiles] | None = None) -> Path:
    """Write a model directory (see the module docstring): ``meta`` and ``tensors`` with the
    format marker and versions added, ``files`` (``{name: write(path)}``) and sub-model
    directories ``models``. Refuses, before writing anything, to replace what is not polytask's."""
    directory = Path(directory)
    _save(directory, ModelFiles(meta, tensors, dict(files or {}), dict(models or {})))
    return directory


def _marker() -> dict[str, Any]:
    return {"format": FORMAT, "format_version": FORMAT_VERSION}


def _save(directory: Path, model: ModelFiles) -> None:
    current = existing_model(directory)
    data = tensors_to_bytes(model.tensors)
    digest = hashlib.sha256(data).hexdigest()
    weights = f"weights-{digest[:16]}.safetensors"
    _check_names(directory, [weights, *model.files], list(model.models), current, "model directory")
    new = [weights, *model.files, *model.models]
    token = secrets.token_hex(8)
    old = set().union(*owned_entries(current))
    pending = {"tokens": [*_pending_tokens(current), token], "names": sorted(set(_pending_names(current)) | set(new))}
    created = not directory.exists()
    directory.mkdir(parents=True, exist_ok=True)
    atomic_write_json(directory / META_FILE, {**(current or _marker()), "pending": pending}, token=token)
    try:
        atomic_write_bytes(directory / weights, data, token=token)
        for name, write in model.files.items():
            part = directory / f".{name}.{token}.part"
            write(part)
            os.replace(part, directory / name)
        for name, sub in model.models.items():
            _save(directory / name, sub)
        meta = {**_marker(), "versions": versions(), **model.meta,
                "weights": {"file": weights, "bytes": len(data), "sha256": digest},
                "files": sorted(model.files), "models": sorted(model.models)}
        leftovers = {"tokens": _pending_tokens(current), "names": sorted((old | set(pending["names"])) - set(new))}
        atomic_write_json(directory / META_FILE, {**meta, "pending": leftovers}, token=token)  # the commit
        fsync_directory(directory)
    except BaseException as exc:
        _abandon(directory, current, created, set(new) - old, token)
        if isinstance(exc, OSError):  # a full disk, a permission: the old model is untouched
            raise PolytaskError(f"model directory '{directory}' could not be written ({exc.strerror or exc}); "
                                "it is left as it was") from None
        raise
    if leftovers["names"] or leftovers["tokens"]:
        _remove(directory, leftovers["names"], leftovers["tokens"])
        atomic_write_json(directory / META_FILE, meta, token=token)  # nothing left to clean up


def _pending_names(meta: Mapping[str, Any] | None) -> list[str]:
    pending = meta.get("pending") if meta is not None and isinstance(meta.get("pending"), dict) else {}
    return _names(pending.get("names"))


def _abandon(directory: Path, current: dict[str, Any] | None, created: bool, names: set[str], token: str) -> None:
    """Undo what a failed save wrote (best effort: what stays is listed as pending for the next)."""
    try:
        _remove(directory, names, [token])
        if current is not None:
            atomic_write_json(directory / META_FILE, current)
        else:
            (directory / META_FILE).unlink(missing_ok=True)
            if created:
                directory.rmdir()
    except OSError:
        pass


def _remove(directory: Path, names: Iterable[str], tokens: Iterable[str]) -> None:
    """Remove entries polytask wrote: files, sub-model directories (only what their own
    ``model.json`` lists, the directory itself if that empties it) and temporary files."""
    for name in names:
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            remove_model(path)
        elif os.path.lexists(path):
            path.unlink(missing_ok=True)
    tokens = list(tokens)
    if tokens and directory.is_dir():
        for entry in directory.iterdir():
            if entry.name.startswith(".") and any(f".{t}." in entry.name for t in tokens) and not entry.is_dir():
                entry.unlink(missing_ok=True)


def remove_model(directory: Path) -> None:
    """Remove a model directory polytask wrote: the entries its ``model.json`` lists, then
    ``model.json``, then the directory when nothing of the user's is left in it."""
    try:
        meta = existing_model(directory)
    except PolytaskError:
        return  # not (or no longer) a polytask model: nothing in it is ours to delete
    if meta is None:
        return
    _remove(directory, set().union(*owned_entries(meta)), _pending_tokens(meta))
    (directory / META_FILE).unlink(missing_ok=True)
    try:
        directory.rmdir()
    except OSError:
        pass  # the user's files are still in it


@contextmanager
def staged_directory(directory: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``directory``; on success swap it into place
    with renames (the old directory, if any, is removed only after the swap); on failure
    remove it and leave ``directory`` untouched. (Report directories; models are written by
    :func:`save_model_files`.) The staging directory's mode honours the umask."""
    directory = _absolute(Path(directory))
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = directory.parent / f".{directory.name}.{secrets.token_hex(8)}.tmp"
    staging.mkdir()
    try:
        yield staging
        backup = None
        if directory.exists():
            backup = directory.parent / f".{directory.name}.{staging.name[-12:-4]}.old"
            directory.rename(backup)
        staging.rename(directory)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# -- reading -----------------------------------------------------------------------------------
class _Stale(PolytaskError):
    """The weights ``model.json`` names are gone or differ: a writer may have replaced the model."""


def _meta_bytes(directory: Path, where: str) -> bytes:
    if not directory.is_dir():
        raise PolytaskError(f"{where} does not exist" if not os.path.lexists(directory) else f"{where} is not a directory")
    try:
        return read_regular_file(directory / META_FILE, MAX_META_BYTES)
    except FileNotFoundError:
        raise PolytaskError(f"{where} is incomplete: '{META_FILE}' is missing") from None
    except PolytaskError as exc:
        raise PolytaskError(f"{where} cannot be read: {exc}") from None


def _check_meta(meta: Any, where: str) -> dict[str, Any]:
    """The format marker and version, and (format 2) the weights entry, of a parsed ``model.json``."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PolytaskError(f"{where} is corrupted: '{META_FILE}' is not a polytask model file")
    version = meta.get("format_version")
    if type(version) is not int or version < 1:
        raise PolytaskError(f"{where} is corrupted: '{META_FILE}' has no valid format_version")
    if version > FORMAT_VERSION:
        raise PolytaskError(f"{where} was written by a newer polytask (format {version}; this one reads up to {FORMAT_VERSION})")
    if version == 1:
        return meta
    if "weights" not in meta and "pending" in meta:
        raise PolytaskError(f"{where} holds no complete model: a save into it was interrupted (save the model again)")
    weights = meta.get("weights")
    if (not isinstance(weights, dict) or not isinstance(weights.get("file"), str)
            or not _WEIGHTS_NAME.fullmatch(weights["file"]) or type(weights.get("bytes")) is not int
            or not isinstance(weights.get("sha256"), str) or not _SHA256.fullmatch(weights["sha256"])
            or not weights["sha256"].startswith(weights["file"][8:24])):
        raise PolytaskError(f"{where} is corrupted: the 'weights' entry of '{META_FILE}' is missing or malformed")
    return meta


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The parsed, marker-checked ``model.json`` of a model directory."""
    directory = Path(directory)
    where = f"model directory '{directory}'"
    return _check_meta(_parse_json(_meta_bytes(directory, where), f"{where} is corrupted"), where)


def _read_weights(directory: Path, meta: dict[str, Any], where: str) -> dict[str, torch.Tensor]:
    entry = meta.get("weights") if meta["format_version"] >= 2 else {"file": LEGACY_WEIGHTS_FILE}
    name = entry["file"]
    try:
        data = read_regular_file(directory / name, MAX_WEIGHTS_BYTES)
    except FileNotFoundError:
        raise _Stale(f"{where} is incomplete: '{name}' is missing") from None
    except PolytaskError as exc:
        raise PolytaskError(f"{where} cannot be read: {exc}") from None
    if "sha256" in entry and (len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]):
        raise _Stale(f"{where} is corrupted: '{name}' does not match the size and SHA-256 that '{META_FILE}' records")
    try:
        return tensors_from_bytes(data)[0]
    except ValueError as exc:
        raise PolytaskError(f"{where} is corrupted: '{name}' cannot be read ({exc})") from None


def weights_path(directory: str | Path) -> Path:
    """The weights file the ``model.json`` of ``directory`` names now."""
    meta = read_meta(directory)
    return Path(directory) / (meta["weights"]["file"] if meta["format_version"] >= 2 else LEGACY_WEIGHTS_FILE)


def read_model_files(directory: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(meta, tensors)`` of one whole model directory, or a one-line PolytaskError naming the
    directory and the file. A writer replacing the model meanwhile makes the read start again
    (at most :data:`READ_ATTEMPTS` times); it never returns the parts of two models."""
    directory = Path(directory)
    where = f"model directory '{directory}'"
    for _ in range(READ_ATTEMPTS):
        raw = _meta_bytes(directory, where)
        meta = _check_meta(_parse_json(raw, f"{where} is corrupted"), where)
        try:
            return meta, _read_weights(directory, meta, where)
        except _Stale as exc:
            try:
                unchanged = _meta_bytes(directory, where) == raw
            except PolytaskError:
                unchanged = False
            if unchanged:
                raise PolytaskError(str(exc)) from None
    raise PolytaskError(f"{where} kept changing while it was read ({READ_ATTEMPTS} attempts); try again")
