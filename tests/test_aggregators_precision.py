"""Gradient aggregation in float32 and on rank-deficient Jacobians, and the solvers' fallbacks.

A float32 Gramian is only known to about ``eps_32 sqrt(P)`` of its largest entry, whatever it
is cast to for solving; judged with float64 tolerances its rounding-level eigenvalues count as
information (issue 12: MGDA crashed on quadprog's "not positive definite", Aligned-MTL shrank
the update 3,500-7,400x, ConFIG returned 0, IMTL-G was off by 20-700 %). The reference here is
the same method on the same network in float64, where the Jacobian is rank-deficient to
rounding: the method's definition, computed accurately.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from polytask import balancers
from polytask.balancers import StepContext
from polytask.balancers.aggregation import solvers

# deterministic methods whose answer is continuous in J (Nash-MTL and FairGrad have no positive
# solution on a rank-deficient Gramian, so there they are only required to stay finite)
CONTINUOUS = ["mean", "sum", "mgda", "cagrad", "imtl_g", "aligned_mtl", "upgrad", "dualproj", "config", "sdmgrad"]


class Net(nn.Module):
    def __init__(self, n_tasks: int, width: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, width), nn.Tanh())
        self.heads = nn.ModuleList([nn.Sequential(nn.Linear(width, 4), nn.Tanh(), nn.Linear(4, 1)) for _ in range(n_tasks)])

    def context(self, x: torch.Tensor, y: torch.Tensor, combine: bool) -> StepContext:
        z = self.trunk(x)
        losses = torch.stack([((h(z).squeeze(1) - y[:, t]) ** 2).mean() for t, h in enumerate(self.heads)])
        if combine:  # the last task's loss is the sum of the first two: J has rank T - 1
            losses = torch.cat([losses[:-1], (losses[0] + losses[1]).reshape(1)])
        names = [f"t{t}" for t in range(len(self.heads))]
        return StepContext(losses, names, list(self.trunk.parameters()),
                           {n: list(h.parameters()) for n, h in zip(names, self.heads)}, representation=z)


def shared_update(net: Net, name: str, mode: str, x: torch.Tensor, y: torch.Tensor, combine: bool) -> tuple[torch.Tensor, float]:
    """The shared parameters' gradient after one ``backward`` (float64), and ``||J||_F``."""
    method = balancers.get(name, mode=mode)
    ctx = net.context(x, y, combine)
    method.setup(ctx.task_names)
    target = [ctx.representation] if mode == "representation" else ctx.shared_params
    rows = [torch.cat([g.reshape(-1) for g in torch.autograd.grad(ctx.losses[t], target, retain_graph=True)])
            for t in range(ctx.losses.shape[0])]
    for p in net.parameters():
        p.grad = None
    method.backward(ctx)
    update = torch.cat([p.grad.reshape(-1) for p in ctx.shared_params]).double()
    return update, float(torch.stack(rows).double().norm())


SCENARIOS = {
    # a task whose loss is a combination of others' (exact mode, Jacobian of the trunk)
    "combined-loss": dict(n_tasks=4, width=6, rows=12, mode="exact", combine=True),
    # representation mode with more tasks than batch x width: 6 tasks, z of 2 x 2
    "tasks-exceed-representation": dict(n_tasks=6, width=2, rows=2, mode="representation", combine=False),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("name", CONTINUOUS)
def test_float32_rank_deficient_step_matches_the_float64_definition(scenario: str, name: str) -> None:
    s = SCENARIOS[scenario]
    torch.manual_seed(0)
    net32 = Net(s["n_tasks"], s["width"])
    net64 = copy.deepcopy(net32).double()
    x, y = torch.randn(s["rows"], 5), torch.randn(s["rows"], s["n_tasks"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback needed: the Gramian is cleaned at its precision
        d32, _ = shared_update(net32, name, s["mode"], x, y, s["combine"])
    d64, scale = shared_update(net64, name, s["mode"], x.double(), y.double(), s["combine"])
    assert torch.isfinite(d32).all()
    # float32 gradients carry ~1e-7 relative noise; the update may differ by a few thousand times
    # that relative to ||J|| (a Gramian's rank decision), not by its own size
    assert float((d32 - d64).norm()) <= 1e-4 * scale, f"{float((d32 - d64).norm()) / scale:.3g} of ||J||"


@pytest.mark.parametrize("name", ["nash_mtl", "fairgrad"])
def test_float32_rank_deficient_step_is_finite_where_no_bargaining_solution_exists(name: str) -> None:
    s = SCENARIOS["combined-loss"]
    torch.manual_seed(0)
    net = Net(s["n_tasks"], s["width"])
    d, scale = shared_update(net, name, "exact", torch.randn(12, 5), torch.randn(12, 4), True)
    assert torch.isfinite(d).all() and float(d.norm()) <= 10 * scale


@pytest.mark.parametrize("name", CONTINUOUS)
def test_float32_rank_deficient_jacobian_matches_the_float64_definition(name: str) -> None:
    """20 random rank-deficient Jacobians (T = 3..6, rank < T, P = 20..3000), rounded to float32:
    the answer stays within 1e-4 ||J|| of the method's on the exact float64 matrix. (Before the
    fix, e.g. Aligned-MTL was off by 0.47 ||J||, ConFIG by 1.5, IMTL-G by 6, and MGDA raised.)"""
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        n_tasks = int(torch.randint(3, 7, (1,), generator=g))
        rank = int(torch.randint(1, n_tasks, (1,), generator=g))
        n_params = int(torch.randint(20, 3000, (1,), generator=g))
        J = torch.randn(n_tasks, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, n_params, generator=g, dtype=torch.float64)
        d64 = balancers.get(name).aggregate(J)
        d32 = balancers.get(name).aggregate(J.float()).double()
        assert torch.isfinite(d32).all()
        assert float((d32 - d64).norm()) <= 1e-4 * float(J.norm()), f"T={n_tasks} r={rank} P={n_params}"


def rank_deficient(n_tasks: int = 4, rank: int = 2, n_params: int = 30) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.randn(n_tasks, rank, generator=g, dtype=torch.float64) @ torch.randn(rank, n_params, generator=g, dtype=torch.float64)


def failing_qp(*args, **kwargs):  # type: ignore[no-untyped-def]
    raise ValueError("matrix G is not positive definite")


def test_mgda_falls_back_to_slsqp_and_says_so_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Should quadprog fail (here forced), MGDA does not stop training: it solves the same
    problem with scipy's SLSQP and warns once per method instance."""
    J = rank_deficient()
    exact = balancers.get("mgda").aggregate(J)
    monkeypatch.setattr(solvers, "solve_qp", failing_qp)
    method = balancers.get("mgda")
    with pytest.warns(RuntimeWarning, match="SLSQP"):
        d = method.aggregate(J)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        method.aggregate(J)  # no second warning
    assert float((d - exact).norm()) <= 1e-6 * float(J.norm())


@pytest.mark.parametrize("name", ["upgrad", "dualproj"])
def test_dual_cone_projection_falls_back_to_nonnegative_least_squares(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """The same projection solved as ``min_{x >= 0} ||R (u + x)||`` (scipy's nnls) when quadprog
    fails: the same answer, and the update still conflicts with no task."""
    J = rank_deficient()
    expected = balancers.get(name, reg_eps=1e-9).aggregate(J)
    monkeypatch.setattr(solvers, "solve_qp", failing_qp)
    d = balancers.get(name, reg_eps=1e-9).aggregate(J)
    torch.testing.assert_close(d, expected, rtol=1e-6, atol=1e-7 * float(J.norm()))
    assert float((J @ d).min()) >= -1e-6 * float((J * J).sum())


def test_mgda_with_no_ridge_on_a_singular_gramian_still_answers() -> None:
    """``reg_eps=0`` leaves quadprog a singular matrix: the step must still come back (through
    the fallback) with the min-norm point."""
    J = rank_deficient()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        d = balancers.get("mgda", reg_eps=0.0).aggregate(J)
    assert torch.isfinite(d).all()
    assert float((d - balancers.get("mgda").aggregate(J)).norm()) <= 1e-6 * float(J.norm())
