"""Where a gradient method's step time goes, next to an EW step (the figures behind the
"Representation mode" and "GradNorm" paragraphs of docs/PERFORMANCE.md).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/step_breakdown.py --net mlp --tasks 30 --method sum
    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/step_breakdown.py --net mlp --tasks 3 --method gradnorm

An aggregation method runs in representation mode; GradNorm (a learnable loss weighting that
reads per-task gradient norms) as it is.

Each named piece is wrapped by a timer (perf_counter, one thread) during ``--steps`` training
steps of the benchmark network; the median per step is printed. The timers add a little to the
total. The last line times one small call (``Problem.of``) right after a step, again at once, and
in a tight loop: the same Python code costs several times more when a step's tensors have just
gone through the caches.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from polytask import balancers, gradients
from polytask.balancers import gradient_paths, gradnorm
from polytask.balancers.aggregation import base
from polytask_lab.bench.problems import FULL_SIZE, build_network, make_batch, task_list
from polytask_lab.bench.suite import _step_fn, _trainer

Timings = dict[str, list[int]]


def timed(owner: Any, name: str, label: str, timings: Timings) -> None:
    """Replace ``owner.name`` by a wrapper that records each call's duration under ``label``."""
    inner: Callable[..., Any] = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return inner(*args, **kwargs)
        finally:
            timings.setdefault(label, []).append(time.perf_counter_ns() - start)

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="mlp", choices=("mlp", "conv"))
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--method", default="sum")
    parser.add_argument("--steps", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    tasks, batch = task_list(args.tasks), make_batch(args.net, args.tasks, FULL_SIZE)
    method = balancers.get(args.method) if args.method == "gradnorm" else balancers.get(args.method, mode="representation")
    runs = {label: _step_fn(_trainer(build_network(args.net, args.tasks, FULL_SIZE), tasks, balancer, "cpu"), batch)
            for label, balancer in (("ew", balancers.get("ew")), (args.method, method))}
    timings: Timings = {}
    wrap_pieces(timings)
    report(runs, args, timings)
    problem_after_a_step(runs[args.method], args.tasks)


def wrap_pieces(timings: Timings) -> None:
    """Timers around the pieces of both kinds of step (each reports only where it runs)."""
    timed(gradients, "linear_readers", "graph read (linear_readers)", timings)
    timed(gradients.torch.autograd, "grad", "heads pass (autograd.grad)", timings)
    timed(gradients.HeadFactors, "gramian", "Gramian", timings)
    timed(base.Problem, "of", "Problem.of", timings)
    timed(gradient_paths, "combine", "weights (combine)", timings)
    timed(gradients.RepresentationGradients, "direction", "direction", timings)
    timed(torch.Tensor, "backward", "Tensor.backward (trunk pass, or the one pass)", timings)
    timed(base.GradientAggregator, "backward", "whole balancer.backward", timings)
    timed(balancers.get("ew").__class__, "backward", "EW balancer.backward", timings)
    timed(gradients, "linear_sites", "graph read (linear_sites)", timings)
    timed(gradients, "_site_diagonal", "D, before the pass (_site_diagonal)", timings)
    timed(gradients, "_norms_through_diagonal", "norms (_norms_through_diagonal)", timings)
    timed(gradnorm, "backward_with_gradient_norms", "one pass and the norms (backward_with_gradient_norms)", timings)
    timed(gradnorm, "per_task_gradient_norms", "norms, all (per_task_gradient_norms)", timings)
    for name in ("normalized_weights", "_initial", "_weight_gradient"):
        timed(gradnorm.GradNorm, name, f"GradNorm.{name}", timings)
    timed(gradnorm.GradNorm, "backward", "whole GradNorm.backward", timings)


def report(runs: dict[str, Callable[[], None]], args: argparse.Namespace, timings: Timings) -> None:
    """Warm each step up, run ``--steps`` of it, print each piece's median per step."""
    for label, step in runs.items():
        for _ in range(50):
            step()
        before = {k: len(v) for k, v in timings.items()}
        for _ in range(args.steps):
            step()
        print(f"-- {label} ({args.net}, T = {args.tasks}), median per step")
        for key, values in timings.items():
            new = values[before.get(key, 0):]
            if new:
                print(f"{key:56s} {statistics.median(new) / 1e3:8.1f} us")


def problem_after_a_step(step: Callable[[], None], n_tasks: int) -> None:
    """One small call (``Problem.of``) right after a step, at once again, and in a tight loop."""
    gram, after, again, loop = torch.randn(n_tasks, n_tasks), [], [], []
    for _ in range(300):
        step()
        for bucket in (after, again):
            start = time.perf_counter_ns()
            base.Problem.of(gram, None, 1)
            bucket.append(time.perf_counter_ns() - start)
    for _ in range(300):
        start = time.perf_counter_ns()
        base.Problem.of(gram, None, 1)
        loop.append(time.perf_counter_ns() - start)
    medians = ", ".join(f"{statistics.median(v) / 1e3:.1f}" for v in (after, again, loop))
    print(f"Problem.of right after a step, again, in a tight loop (us): {medians}")


if __name__ == "__main__":
    main()
