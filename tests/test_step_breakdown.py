"""benchmarks/step_breakdown.py and benchmarks/step_elimination.py, the commands behind the
representation-mode and GradNorm figures of docs/PERFORMANCE.md, run and name every piece they
report (in a subprocess: they replace library functions while they run)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_breakdown_reports_each_piece_of_a_representation_step() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_breakdown.py"), "--tasks", "3", "--steps", "3"],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    sum_part = done.stdout.split("-- sum")[1]
    for piece in ("graph read", "heads pass", "Gramian", "Problem.of", "weights (combine)", "direction", "trunk pass",
                  "whole balancer.backward"):
        assert piece in sum_part, piece
    assert "EW balancer.backward" in done.stdout.split("-- sum")[0]
    assert "Problem.of right after a step" in done.stdout


def test_breakdown_reports_each_piece_of_a_gradnorm_step() -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_breakdown.py"), "--tasks", "3", "--steps", "3",
                           "--method", "gradnorm"], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    part = done.stdout.split("-- gradnorm")[1]
    for piece in ("graph read (linear_readers)", "graph read (linear_sites)", "D, before the pass", "norms (_norms_through_diagonal)",
                  "one pass and the norms", "GradNorm._weight_gradient", "the one pass", "whole GradNorm.backward"):
        assert piece in part, piece
    assert "GradNorm" not in done.stdout.split("-- gradnorm")[0]


def test_elimination_reports_every_candidate_against_ew() -> None:
    """benchmarks/step_elimination.py (the GradNorm paragraph's elimination figures) runs and
    prints a ratio for every candidate, EW's own being 1."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "step_elimination.py"), "--tasks", "3", "--steps", "2",
                           "--rounds", "1"], capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    rows = {line[:22].strip(): line[22:].split() for line in done.stdout.splitlines()[1:]}
    assert set(rows) == {"ew", "ew (control)", "gradnorm", "no norms", "no norms, no update", "one pass", "two passes"}
    assert rows["ew"][0] == "1.000" and all(float(r[0]) > 0 for r in rows.values())
