"""The model directory: weights in safetensors, everything else in JSON; never a pickle.

This module knows directories, JSON and tensors only; what the JSON and the tensors mean is
the model's own business (:meth:`polytask.fitted.FittedModel.to_files`).

Layout::

    DIR/model.json          format, versions, architecture + config, tasks, target encoders,
                            preprocessing, best epochs, training config and summary
    DIR/weights.safetensors one tensor per (snapshot epoch, parameter): "epoch{e}/{name}"

Saving writes a complete new directory beside the target and swaps it in with renames, so a
crash never leaves a half-written model and a failed save never damages a good one.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from polytask.errors import PolytaskError
from polytask.serialization import atomic_write_json, load_tensors, save_tensors
from polytask.version import polytask_version

FORMAT = "polytask-model"
FORMAT_VERSION = 1
META_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"


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


@contextmanager
def staged_directory(directory: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``directory``; on success swap it into place
    with renames (the old directory, if any, is removed only after the swap); on failure
    remove it and leave ``directory`` untouched."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}.tmp-"))
    try:
        yield staging
        backup = None
        if directory.exists():
            backup = directory.parent / f".{directory.name}.old-{staging.name[-8:]}"
            directory.rename(backup)
        staging.rename(directory)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def check_output_directory(directory: str | Path) -> None:
    """Refuse to replace something that is not a polytask model directory."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise PolytaskError(f"'{directory}' exists and is not a directory")
    if directory.exists() and any(directory.iterdir()) and not (directory / META_FILE).exists():
        raise PolytaskError(f"'{directory}' exists and is not a polytask model directory; refusing to overwrite it")


def write_model_files(directory: Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Write ``tensors`` and ``meta`` (with the format marker and library versions added) into
    the existing ``directory``."""
    save_tensors(directory / WEIGHTS_FILE, tensors)
    atomic_write_json(directory / META_FILE, {"format": FORMAT, "format_version": FORMAT_VERSION, "versions": versions(), **meta})


def save_model_files(directory: str | Path, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write a model directory atomically (refusing to replace anything that is not one)."""
    directory = Path(directory)
    check_output_directory(directory)
    with staged_directory(directory) as staging:
        write_model_files(staging, meta, tensors)
    return directory


def read_meta(directory: str | Path) -> dict[str, Any]:
    """The parsed ``model.json`` of a model directory, with clear errors when it is broken."""
    directory = Path(directory)
    if not directory.is_dir():
        raise PolytaskError(f"model directory '{directory}' does not exist")
    meta_path = directory / META_FILE
    if not meta_path.exists():
        raise PolytaskError(f"model directory '{directory}' is incomplete: '{META_FILE}' is missing")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PolytaskError(f"model directory '{directory}' is corrupted: '{META_FILE}' is not valid JSON ({exc.msg if hasattr(exc, 'msg') else exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise PolytaskError(f"model directory '{directory}' is corrupted: '{META_FILE}' is not a polytask model file")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise PolytaskError(
            f"model directory '{directory}' was written by a newer polytask (format {meta['format_version']})"
        )
    return meta


def read_model_files(directory: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(meta, tensors)`` of a model directory, with clear errors when a file is missing or damaged."""
    directory = Path(directory)
    meta = read_meta(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.exists():
        raise PolytaskError(f"model directory '{directory}' is incomplete: '{WEIGHTS_FILE}' is missing")
    try:
        tensors = load_tensors(weights_path)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise PolytaskError(f"model directory '{directory}' is corrupted: '{WEIGHTS_FILE}' cannot be read ({exc})") from None
    return meta, tensors
