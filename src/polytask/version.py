"""The installed version of polytask, read from the package metadata (declared once, in
pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def polytask_version() -> str:
    try:
        return version("polytask")
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


__version__ = polytask_version()
