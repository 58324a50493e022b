"""The two peers every gradient method is measured against, computing the same update.

- :class:`PerTaskLoop`: what LibMTL does. One backward pass per task with ``retain_graph``,
  each task's gradient of the shared parameters (or of the representation ``z``) copied into
  row t of a preallocated T x P matrix, then the method's own ``aggregate(J)`` and the result
  written into ``.grad`` (or, in representation mode, pushed through the trunk with one more
  backward pass from ``z``). Written here as a baseline; no code is taken from LibMTL.
- :class:`TorchjdPeer`: torchjd's engine. Exact mode: ``torchjd.autojac.mtl_backward`` (task
  heads by ordinary gradients, the Jacobian of the shared parameters by a vmapped VJP from the
  features) then ``torchjd.autojac.jac_to_grad`` with torchjd's own aggregator for the method.
  Representation mode: ``torchjd.autojac.jac`` of the losses with respect to ``z``, the same
  aggregator, then one backward pass from ``z``. Where torchjd has no aggregator for a method,
  our ``aggregate`` is wrapped as a torchjd ``Aggregator`` (the report says which).

Both are :class:`~polytask.balancers.Balancer` subclasses, so the benchmark runs them through
exactly the same training step as the library's own methods. In both, each head receives its
own task's gradient (as torchjd's ``mtl_backward`` does); only the shared update is aggregated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from polytask.balancers import Balancer, StepContext
from polytask.errors import PolytaskError
from polytask.gradients import accumulate_flat_gradient, parameter_source

Aggregate = Callable[[torch.Tensor], torch.Tensor]
MODES = ("exact", "representation")


def sum_rows(jacobian: torch.Tensor) -> torch.Tensor:
    """Equal weighting as an aggregation: ``sum_t J[t]``."""
    return jacobian.sum(dim=0)


def _check_mode(mode: str) -> str:
    if mode not in MODES:
        raise PolytaskError(f"unknown gradient mode '{mode}' (choose from {', '.join(MODES)})")
    return mode


def _add_grad(param: torch.Tensor, grad: torch.Tensor | None) -> None:
    if grad is None:
        return
    if param.grad is None:
        param.grad = grad.detach().clone()
    else:
        param.grad.add_(grad)


class PerTaskLoop(Balancer):
    """T backward passes with ``retain_graph``, gradients flattened into a T x P matrix, then
    ``aggregate(J)`` (LibMTL's way of getting per-task gradients)."""

    name = "per_task_loop"

    def __init__(self, aggregate: Aggregate, mode: str = "exact") -> None:
        super().__init__()
        self.aggregate = aggregate
        self.mode = _check_mode(mode)

    def backward(self, ctx: StepContext) -> torch.Tensor:
        losses = ctx.losses
        n_tasks = losses.shape[0]
        if self.mode == "representation":
            if ctx.representation is None:
                raise PolytaskError("representation mode needs the shared representation z")
            targets: list[torch.Tensor] = [ctx.representation]
        else:
            targets = list(ctx.shared_params)
        width = sum(p.numel() for p in targets)
        jacobian = losses.new_zeros((n_tasks, width))
        for t, name in enumerate(ctx.task_names):
            head = _leaves(ctx.task_params[name])
            keep = self.mode == "representation" or t < n_tasks - 1
            grads = torch.autograd.grad(losses[t], targets + head, retain_graph=keep, allow_unused=True)
            offset = 0
            for g, p in zip(grads[: len(targets)], targets):
                if g is not None:
                    jacobian[t, offset : offset + p.numel()].copy_(g.reshape(-1))
                offset += p.numel()
            for g, p in zip(grads[len(targets) :], head):
                _add_grad(p, g)
        combined = self.aggregate(jacobian)
        if self.mode == "representation":
            z = targets[0]
            z.backward(combined.reshape(z.shape).to(z.dtype))
        else:
            accumulate_flat_gradient(ctx.shared_params, combined)
        return torch.ones(n_tasks)


def _leaves(params: Any) -> list[torch.Tensor]:
    """The leaf tensors behind ``params`` (a fused head bank for its tasks' row blocks), each
    once: a loss differentiated with respect to a bank fills its own task's rows only, so the
    peers' per-task passes add up to each task's own gradient."""
    out: list[torch.Tensor] = []
    for p in params:
        leaf, _ = parameter_source(p)
        if not any(leaf is q for q in out):
            out.append(leaf)
    return out


def _torchjd_classes() -> Any:
    try:
        import torchjd.aggregation as aggregation
        import torchjd.autojac as autojac
    except ImportError:  # pragma: no cover - torchjd is a test/bench dependency
        raise PolytaskError("the torchjd peer needs torchjd (pip install 'polytask[bench]')") from None
    return aggregation, autojac


def _opt(options: Mapping[str, Any], *keys: str, default: Any) -> Any:
    for k in keys:
        if k in options and options[k] is not None:
            return options[k]
    return default


def torchjd_aggregator(method: str, n_tasks: int, options: Mapping[str, Any], fallback: Aggregate) -> tuple[Any, str]:
    """torchjd's aggregator for ``method`` built with our method's ``options`` where the two
    share an option, and its label; where torchjd has none, ``fallback`` (our ``aggregate``)
    wrapped as a torchjd ``Aggregator``."""
    A, _ = _torchjd_classes()
    base = method[: -len("_ub")] if method.endswith("_ub") else method
    def projector() -> Any:
        from torchjd._linalg._dual_cone import QuadprogProjector

        return QuadprogProjector(norm_eps=float(_opt(options, "norm_eps", default=1e-4)),
                                 reg_eps=float(_opt(options, "reg_eps", default=1e-4)))

    builders: dict[str, Callable[[], Any]] = {
        "ew": lambda: A.Sum(),
        "sum": lambda: A.Sum(),
        "mean": lambda: A.Mean(),
        "upgrad": lambda: A.UPGrad(projector=projector()),
        "dualproj": lambda: A.DualProj(projector=projector()),
        "mgda": lambda: A.MGDA(epsilon=float(_opt(options, "epsilon", default=1e-3)),
                               max_iters=int(_opt(options, "max_iters", default=100))),
        "cagrad": lambda: A.CAGrad(c=float(_opt(options, "c", default=0.5)), norm_eps=float(_opt(options, "norm_eps", default=1e-4))),
        "imtl_g": lambda: A.IMTLG(),
        "aligned_mtl": lambda: A.AlignedMTL(scale_mode=str(_opt(options, "scale_mode", default="min"))),
        "nash_mtl": lambda: A.NashMTL(
            n_tasks=n_tasks,
            max_norm=float(_opt(options, "max_norm", default=1.0)),
            update_weights_every=int(_opt(options, "update_weights_every", default=1)),
        ),
        "pcgrad": lambda: A.PCGrad(),
        "gradvac": lambda: A.GradVac(beta=float(_opt(options, "beta", default=0.5)), eps=float(_opt(options, "eps", default=1e-8))),
        "fairgrad": lambda: A.FairGrad(alpha=float(_opt(options, "alpha", default=1.0)), max_iters=_opt(options, "max_iters", default=None)),
        "excess_mtl": lambda: A.ExcessMTL(robust_step_size=float(_opt(options, "robust_step_size", default=1.0)),
                                          n_warmup_steps=int(_opt(options, "n_warmup_steps", default=0))),
        "graddrop": lambda: A.GradDrop(),
        "config": lambda: A.ConFIG(),
        "sdmgrad": lambda: A.GramianWeightedAggregator(A.SDMGradWeighting(
            lr=float(_opt(options, "lr", default=10.0)), momentum=float(_opt(options, "momentum", default=0.5)),
            n_iter=int(_opt(options, "n_iter", default=20)), lambda_=float(_opt(options, "lambda_", default=0.3)))),
    }
    if base in builders:
        agg = builders[base]()
        inner = getattr(agg, "gramian_weighting", None) if base == "sdmgrad" else None
        return agg, f"torchjd.{type(inner).__name__ if inner is not None else type(agg).__name__}"

    class OurAggregation(A.Aggregator):  # type: ignore[misc, name-defined]
        def forward(self, matrix: torch.Tensor, /) -> torch.Tensor:
            return fallback(matrix)

    return OurAggregation(), "polytask aggregate (torchjd has none)"


class TorchjdPeer(Balancer):
    """torchjd's ``mtl_backward`` + ``jac_to_grad`` (exact) or ``jac`` w.r.t. ``z``
    (representation), with the given torchjd aggregator."""

    name = "torchjd_peer"

    def __init__(self, aggregator: Any, mode: str = "exact") -> None:
        super().__init__()
        self.aggregator = aggregator
        self.mode = _check_mode(mode)
        _, self._autojac = _torchjd_classes()

    def backward(self, ctx: StepContext) -> torch.Tensor:
        losses = [ctx.losses[t] for t in range(ctx.losses.shape[0])]
        heads = [_leaves(ctx.task_params[name]) for name in ctx.task_names]
        z = ctx.representation
        if z is None:
            raise PolytaskError("the torchjd peer needs the shared representation z")
        if self.mode == "exact":
            self._autojac.mtl_backward(
                losses, features=z, tasks_params=heads, shared_params=list(ctx.shared_params), retain_graph=True
            )
            self._autojac.jac_to_grad(list(ctx.shared_params), self.aggregator)
        else:
            (jz,) = self._autojac.jac(losses, [z], retain_graph=True)
            flat_heads = _leaves([p for h in heads for p in h])
            if flat_heads:
                torch.autograd.backward(ctx.losses.sum(), inputs=flat_heads, retain_graph=True)
            combined = self.aggregator(jz.reshape(len(losses), -1))
            z.backward(combined.reshape(z.shape).to(z.dtype))
        return torch.ones(len(losses))
