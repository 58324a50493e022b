"""Commands import what they use: help, the version and usage errors answer without importing
torch, pandas or scikit-learn (the time this saves is measured in docs/PERFORMANCE.md, not here)."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("torch", "pandas", "sklearn", "scipy", "numpy")
PROBE = """
import sys
from polytask.cli import main
code = main({args!r})
print("CODE", code)
print("LOADED", ",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["fit", "--help"], ["predict", "--help"], ["nosuch"],
                                  ["fit", "--bogus", "x"], ["fit"]], ids=" ".join)
def test_help_version_and_usage_errors_import_no_heavy_package(args: list[str]) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE.format(args=args, heavy=HEAVY)], capture_output=True, text=True, timeout=120)
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.stdout.splitlines() if line.startswith(("CODE", "LOADED")))
    assert "CODE" in lines, out.stderr
    assert lines.get("LOADED", "") == "", f"polytask {' '.join(args)} imported {lines['LOADED']}"


def test_import_polytask_is_lazy_and_every_public_name_resolves() -> None:
    code = "import sys, polytask as pt; assert 'torch' not in sys.modules; print(pt.__version__); " \
           "[getattr(pt, n) for n in pt.__all__]; assert 'torch' in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_light_name_lists_match_what_they_stand_for() -> None:
    from polytask.models import ARCHITECTURES
    from polytask.models.layers import ACTIVATIONS
    from polytask.models.names import ACTIVATION_NAMES, BUILTIN_ARCHITECTURES

    assert set(BUILTIN_ARCHITECTURES) == set(ARCHITECTURES)
    assert tuple(ACTIVATIONS) == ACTIVATION_NAMES
