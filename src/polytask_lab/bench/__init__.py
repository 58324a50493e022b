"""Speed benchmark of task balancing: step time and peak memory of every registered method,
as ratios against equal weighting, the per-task loop (LibMTL's way) and torchjd, measured side
by side in one run. ``polytask bench`` and ``benchmarks/step_time.py`` drive it.

Modules: :mod:`~polytask_lab.bench.problems` (networks and batches), :mod:`~polytask_lab.bench.peers`
(the loop and torchjd peers), :mod:`~polytask_lab.bench.measure` (interleaved timing, peak tensor
memory), :mod:`~polytask_lab.bench.check` (do the peers compute the same update?),
:mod:`~polytask_lab.bench.suite` (candidates, ratios, targets) and :mod:`~polytask_lab.bench.report`
(the markdown document).
"""

from polytask_lab.bench.suite import BenchSettings, run_benchmark

__all__ = ["BenchSettings", "run_benchmark"]
