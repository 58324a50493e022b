"""Packages whose public names are imported on first use.

``polytask --help`` must not pay for torch, pandas or scikit-learn, so the packages that
re-export names from heavy modules (``polytask``, ``polytask.models``, ``polytask.training``,
``polytask.data``) resolve each name when it is first read (a module ``__getattr__``, PEP 562)::

    __getattr__, __dir__ = lazy_exports(__name__, {"Trainer": "polytask.training.trainer"})
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str | tuple[str, str]]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps each public name to the
    module that defines it, or to ``(module, name there)``; a resolved name is cached in the
    package."""
    table = {k: (v, k) if isinstance(v, str) else v for k, v in exports.items()}

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module '{package}' has no attribute '{name}'")
        module, attr = table[name]
        value = getattr(import_module(module), attr)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
