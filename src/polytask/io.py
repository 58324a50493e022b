"""The model directory: weights in safetensors, everything else in JSON; never a pickle.

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

from polytask.data.preprocessing import FeaturePreprocessor
from polytask.data.targets import TargetEncoder
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


def write_model_files(model: Any, directory: Path) -> None:
    """Write the weights and ``model.json`` of ``model`` into the existing ``directory``."""
    tensors = {
        f"epoch{epoch}/{name}": t
        for epoch, state in model.snapshots.items()
        for name, t in state.items()
    }
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "arch": model.network.arch,
        "network": model.network.config(),
        "tasks": [t.to_dict() for t in model.tasks],
        "encoders": {e.task.name: e.to_dict() for e in model.encoders},
        "preprocessing": model.preprocessor.to_dict(),
        "best_epoch": model.best_epoch,
        "train_config": model.train_config,
        "summary": model.summary,
    }
    save_tensors(directory / WEIGHTS_FILE, tensors)
    atomic_write_json(directory / META_FILE, meta)


def save_model(model: Any, directory: str | Path) -> Path:
    """Write ``model`` (a :class:`~polytask.fitted.FittedModel`) to ``directory`` atomically."""
    directory = Path(directory)
    check_output_directory(directory)
    with staged_directory(directory) as staging:
        write_model_files(model, staging)
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
    required = ("arch", "network", "tasks", "encoders", "preprocessing", "best_epoch")
    absent = [k for k in required if k not in meta]
    if absent:
        raise PolytaskError(f"model directory '{directory}' is corrupted: '{META_FILE}' lacks '{absent[0]}'")
    return meta


def load_model(directory: str | Path, **network_options: Any) -> Any:
    """Load a model directory (``network_options`` supply the user modules JSON cannot hold:
    ``trunk_module=``, ``head_module=``, ``expert_module=``, the builders it was made with)."""
    from polytask.fitted import FittedModel
    from polytask.models import network_from_config
    from polytask.tasks import Task

    directory = Path(directory)
    meta = read_meta(directory)
    weights_path = directory / WEIGHTS_FILE
    if not weights_path.exists():
        raise PolytaskError(f"model directory '{directory}' is incomplete: '{WEIGHTS_FILE}' is missing")
    try:
        tasks = [Task.from_dict(d) for d in meta["tasks"]]
        encoders = [TargetEncoder.from_dict(t, meta["encoders"][t.name]) for t in tasks]
        preprocessor = FeaturePreprocessor.from_dict(meta["preprocessing"])
        config = dict(meta["network"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PolytaskError(f"model directory '{directory}' is corrupted: bad entry in '{META_FILE}' ({exc})") from None
    network = network_from_config(meta["arch"], config, network_options, source=f"model directory '{directory}'")
    try:
        flat = load_tensors(weights_path)
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise PolytaskError(f"model directory '{directory}' is corrupted: '{WEIGHTS_FILE}' cannot be read ({exc})") from None
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in flat.items():
        head, _, name = key.partition("/")
        snapshots.setdefault(int(head.removeprefix("epoch")), {})[name] = tensor
    best_epoch = {k: int(v) for k, v in meta["best_epoch"].items()}
    expected = set(network.state_dict())
    for epoch in set(best_epoch.values()):
        if epoch not in snapshots:
            raise PolytaskError(f"model directory '{directory}' is incomplete: weights of epoch {epoch} are missing")
        absent = expected - set(snapshots[epoch])
        if absent:
            raise PolytaskError(
                f"model directory '{directory}' is incomplete: tensor '{sorted(absent)[0]}' is missing"
            )
    network.load_state_dict(snapshots[max(set(best_epoch.values()))])
    network.eval()
    return FittedModel(
        network=network,
        tasks=tasks,
        encoders=encoders,
        preprocessor=preprocessor,
        snapshots=snapshots,
        best_epoch=best_epoch,
        train_config=meta.get("train_config", {}),
        summary=meta.get("summary", {}),
    )
