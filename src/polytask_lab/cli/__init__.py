"""The lab's commands for the ``polytask`` CLI (entry-point group ``polytask.commands``).

Each module defines ``command``. Only click and the CLI's own helpers are imported at module
level, so that registering the commands costs ``polytask --help`` nothing; the work and its
heavy imports happen when a command runs, under :func:`lab_imports`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from polytask.errors import PolytaskError

#: The importable modules of the ``lab`` extra (pyproject.toml).
LAB_MODULES: tuple[str, ...] = ("jinja2", "torchjd", "cvxpy", "clarabel", "qpsolvers", "quadprog", "statsmodels")
#: What the speed benchmark imports before it starts (the default of :func:`lab_imports`).
BENCH_MODULES: tuple[str, ...] = ("jinja2", "torchjd", "cvxpy", "clarabel", "qpsolvers", "quadprog")


@contextmanager
def lab_imports(command: str, needs: Sequence[str] = BENCH_MODULES) -> Iterator[None]:
    """Import ``needs`` first (so that a long run cannot fail at its end for want of a
    package), then run the body; a missing module of the lab extra, there or in the body,
    becomes one line naming the extra."""
    try:
        for module in needs:
            importlib.import_module(module)
        yield
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in LAB_MODULES:
            raise
        raise PolytaskError(f'polytask {command} needs the lab extra: pip install "polytask[lab]"') from exc
