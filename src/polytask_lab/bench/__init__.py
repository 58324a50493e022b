"""Speed benchmark of task balancing: step time and peak memory of every registered method,
as ratios against equal weighting, the per-task loop (LibMTL's way) and torchjd, measured side
by side in one run. ``polytask bench`` and ``benchmarks/step_time.py`` drive it.

Modules: :mod:`~polytask.bench.problems` (networks and batches), :mod:`~polytask.bench.peers`
(the loop and torchjd peers), :mod:`~polytask.bench.measure` (interleaved timing, peak tensor
memory), :mod:`~polytask.bench.check` (do the peers compute the same update?),
:mod:`~polytask.bench.suite` (candidates, ratios, targets) and :mod:`~polytask.bench.report`
(the markdown document).
"""

from polytask.bench.suite import BenchSettings, run_benchmark

__all__ = ["BenchSettings", "run_benchmark"]
