"""What each part of a GradNorm step costs, by elimination: the step with one part replaced by a
constant, interleaved with the whole step and EW (the figures behind the "GradNorm" paragraph of
docs/PERFORMANCE.md).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/step_elimination.py --net mlp --tasks 3

Timing a piece inside a step (benchmarks/step_breakdown.py) shows where time goes but not what
removing it would save: small operations cost several times more inside a step than alone, and
a piece changes what the pieces after it find in the caches. Here every candidate is a whole
training step; each round runs ``--steps`` steps of every candidate in turn (process CPU time,
one thread) and the ratio to EW is the median over rounds of the per-round ratios, with their
range. Candidates:

- ``ew`` twice (the second is the control);
- ``gradnorm``: the whole step;
- ``no norms``: the norms' arithmetic replaced by zeros (the graph reads and hooks stay);
- ``no norms, no update``: and the weights' gradient replaced by zeros;
- ``one pass``: only GradNorm's renormalized weights and one backward pass of ``sum_t w_t L_t``;
- ``two passes``: the same gradient from a pass through the heads to z, then one from z.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import torch

from polytask import balancers, gradients
from polytask.balancers import StepContext
from polytask.balancers.gradnorm import GradNorm
from polytask_lab.bench.problems import FULL_SIZE, build_network, make_batch, task_list
from polytask_lab.bench.suite import _step_fn, _trainer


class OnePass(GradNorm):
    """GradNorm's weights, then EW's single backward pass of the weighted losses."""

    def backward(self, ctx: StepContext) -> torch.Tensor:
        w = self.normalized_weights()
        (w * ctx.losses).sum().backward()
        return w.clone()


class TwoPasses(GradNorm):
    """The same gradient in two passes: through the heads to z (their gradients added), then from z."""

    def backward(self, ctx: StepContext) -> torch.Tensor:
        w = self.normalized_weights()
        z = ctx.representation
        assert z is not None
        layout = gradients.TaskLayout.of([list(ctx.task_params.get(t, [])) for t in ctx.task_names], self._layout)
        self._layout = layout
        grads = torch.autograd.grad((w * ctx.losses).sum(), [z, *layout.leaves.leaves], retain_graph=True)
        layout.leaves.add(grads[1:])
        z.backward(grads[0])
        return w.clone()


def _zero_norms(x: torch.Tensor, diag: Any, factors: gradients.HeadFactors, bias: bool) -> torch.Tensor:
    return factors.dy.new_zeros(factors.dy.shape[1])


def _zero_update(self: GradNorm, G: torch.Tensor, *rest: Any) -> torch.Tensor:
    return torch.zeros_like(G)


#: label -> (balancer factory, replacements (owner, attribute, value) while it runs)
CANDIDATES: dict[str, tuple[Callable[[], Any], list[tuple[Any, str, Any]]]] = {
    "ew": (lambda: balancers.get("ew"), []),
    "ew (control)": (lambda: balancers.get("ew"), []),
    "gradnorm": (lambda: balancers.get("gradnorm"), []),
    "no norms": (lambda: balancers.get("gradnorm"), [(gradients, "_norms_through_diagonal", _zero_norms)]),
    "no norms, no update": (lambda: balancers.get("gradnorm"), [(gradients, "_norms_through_diagonal", _zero_norms),
                                                                (GradNorm, "_weight_gradient", _zero_update)]),
    "one pass": (OnePass, []),
    "two passes": (TwoPasses, []),
}


def run(net: str, n_tasks: int, steps: int, rounds: int) -> dict[str, list[float]]:
    """Per-round seconds per step of every candidate."""
    torch.set_num_threads(1)
    tasks, batch = task_list(n_tasks), make_batch(net, n_tasks, FULL_SIZE)
    steps_of = {label: _step_fn(_trainer(build_network(net, n_tasks, FULL_SIZE), tasks, make(), "cpu"), batch)
                for label, (make, _) in CANDIDATES.items()}
    times: dict[str, list[float]] = {label: [] for label in CANDIDATES}
    for r in range(rounds + 1):  # round 0 warms up
        for label, step in steps_of.items():
            with ExitStack() as stack:
                for owner, name, value in CANDIDATES[label][1]:
                    stack.callback(setattr, owner, name, getattr(owner, name))
                    setattr(owner, name, value)
                start = time.process_time()
                for _ in range(steps):
                    step()
                if r:
                    times[label].append((time.process_time() - start) / steps)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", default="mlp", choices=("mlp", "conv"))
    parser.add_argument("--tasks", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    times = run(args.net, args.tasks, args.steps, args.rounds)
    print(f"-- {args.net}, T = {args.tasks}: step time / EW step, median over {args.rounds} rounds [range]")
    for label, samples in times.items():
        ratios = [a / b for a, b in zip(samples, times["ew"])]
        print(f"{label:22s} {statistics.median(ratios):.3f} [{min(ratios):.2f}, {max(ratios):.2f}]"
              f"  {statistics.median(samples) * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
