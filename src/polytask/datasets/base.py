"""What a data set loader returns, and how loaders find the files of their optional packages."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError

EXTRA_HINT = "pip install 'polytask[datasets]'"


@dataclass
class Dataset:
    """A multi-task table plus what a reader needs to trust it.

    ``targets`` are the main task columns (``kinds`` fixes their kinds), ``features`` the input
    columns, ``test_rows`` the official test rows when the source defines a split (None: draw a
    random split). ``info`` holds the source, licence, task list, preprocessing and default
    split in words, plus loader-specific metadata (e.g. ``image_shape``).
    """

    name: str
    frame: pd.DataFrame
    targets: list[str]
    features: list[str]
    kinds: dict[str, str] = field(default_factory=dict)
    test_rows: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [c for c in self.targets + self.features if c not in self.frame.columns]
        if missing:
            raise PolytaskError(f"data set '{self.name}': column '{missing[0]}' is not in its table")


def package_dir(package: str, dataset: str, install: str = EXTRA_HINT) -> Path:
    """The directory of an installed package, found without importing it (some data packages
    import libraries they do not need to read their files); a clear error names what to install."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PolytaskError(f"data set '{dataset}' needs the package '{package}': {install}")
    return Path(next(iter(spec.submodule_search_locations)))


def require_file(path: Path, dataset: str, install: str = EXTRA_HINT) -> Path:
    if not path.is_file():
        raise PolytaskError(f"data set '{dataset}': file '{path}' is missing (reinstall: {install})")
    return path


def subsample(n_total: int, n: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded random subset of size ``n`` (all rows when None)."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    if n < 1:
        raise PolytaskError(f"subset size must be >= 1, got {n}")
    return np.sort(np.random.default_rng(seed).choice(n_total, size=n, replace=False))
