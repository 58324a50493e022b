"""Every registered gradient-aggregation method, in float32 and float64, on random, conflicting,
exactly opposite, rank-deficient and zero-gradient Jacobians (hypothesis): a finite update, as
good as the method's definition allows at the gradients' precision, and no exception during a
training step, whatever the tasks present.

"As good as the definition": against torchjd 0.18 in float64 where it implements the same
definition (see tests/test_aggregators_oracle.py for where it does not), and in float32 against
the same method on the same matrix in float64.
"""

from __future__ import annotations

import warnings

import torch
import torchjd.aggregation as tja
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from polytask import balancers
from polytask.balancers import StepContext
from polytask.balancers.aggregation.base import Problem
from polytask.balancers.aggregation.solvers import rank_tolerance

GRADIENT_METHODS = [n for n in balancers.names() if balancers.modes(n)]
KINDS = ("random", "conflicting", "opposite", "rank_deficient", "zero_gradient")
# deterministic, and continuous in J wherever they are defined (not SDMGrad: its 20 projected-gradient
# steps at lr 10 are not a converged solve and amplify a 1e-7 change of G about a thousandfold)
CONTINUOUS = {"mean", "sum", "mgda", "cagrad", "imtl_g", "aligned_mtl", "upgrad", "dualproj", "config", "excess_mtl", "moco"}
TORCHJD = {
    "mean": lambda: tja.Mean(), "sum": lambda: tja.Sum(), "upgrad": lambda: tja.UPGrad(), "dualproj": lambda: tja.DualProj(),
    "imtl_g": lambda: tja.IMTLG(), "aligned_mtl": lambda: tja.AlignedMTL(), "config": lambda: tja.ConFIG(),
}
SETTINGS = settings(max_examples=400, deadline=None, derandomize=True)


@st.composite
def problems(draw):  # type: ignore[no-untyped-def]
    """(kind, J): a float64 (T, P) Jacobian of the given kind, rows scaled unevenly."""
    kind = draw(st.sampled_from(KINDS))
    n_tasks = draw(st.integers(2, 6))
    n_params = draw(st.integers(2, 40))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    rand = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)  # noqa: E731
    if kind == "random":
        J = rand(n_tasks, n_params)
    elif kind == "conflicting":
        base = rand(n_params)
        J = 0.3 * rand(n_tasks, n_params)
        J[: (n_tasks + 1) // 2] += base
        J[(n_tasks + 1) // 2 :] -= 1.5 * base
    elif kind == "opposite":  # every row a multiple of one direction, both signs present
        signs = torch.tensor([1.0 if t % 2 == 0 else -1.0 for t in range(n_tasks)], dtype=torch.float64)
        J = signs[:, None] * rand(n_params)[None, :]
    elif kind == "rank_deficient":
        rank = draw(st.integers(1, n_tasks - 1))
        J = rand(n_tasks, rank) @ rand(rank, n_params)
    else:
        J = rand(n_tasks, n_params)
        J[draw(st.integers(0, n_tasks - 1))] = 0.0
    scales = torch.tensor(draw(st.lists(st.floats(0.1, 10.0), min_size=n_tasks, max_size=n_tasks)), dtype=torch.float64)
    return kind, J * scales[:, None] * 10 ** draw(st.floats(-3.0, 3.0))


# IMTL-G's weights are v / sum(v), unbounded by definition as sum(v) -> 0 (e.g. +-multiples of one
# gradient whose signed norms nearly cancel); FairGrad's solve G w = w^(-1/alpha) has no bound either;
# Nash-MTL's update has length sqrt(T) whatever the gradients' scale (then clipped to max_norm)
UNBOUNDED = {"imtl_g", "fairgrad", "nash_mtl"}
RANK_DECIDING = {"aligned_mtl", "imtl_g", "config"}  # their answer jumps where the numerical rank changes


def rank_is_clear(J: torch.Tensor) -> bool:
    """Whether every eigenvalue of ``G`` and of the unit-gradient Gramian lies far (x1000) from
    float32's rank tolerance. Near it, float32 legitimately decides the rank either way (the
    eigenvalue is within the Gramian's rounding), and so does the answer of a rank-deciding method."""
    G = J @ J.T
    norms = G.diagonal().sqrt()
    unit = G / torch.where(norms > 0, norms, 1.0)[:, None] / torch.where(norms > 0, norms, 1.0)[None, :]
    entry_error = Problem.of(J.float(), None, J.shape[1]).entry_error
    for gram in (G, unit):
        lam = torch.linalg.eigvalsh(gram)
        tol = rank_tolerance(lam, entry_error)
        if bool(((lam > tol / 1000) & (lam < tol * 1000)).any()):
            return False
    return True


def well_posed(name: str, kind: str) -> bool:
    """Where the definition gives one answer that torchjd computes too: ConFIG of exactly opposite
    gradients is 0 by definition while torchjd's pseudo-inverse keeps rounding noise there."""
    return not (name == "config" and kind == "opposite")


@SETTINGS
@given(problems(), st.sampled_from(GRADIENT_METHODS))
def test_every_aggregator_is_finite_and_as_good_as_its_definition(problem: tuple[str, torch.Tensor], name: str) -> None:
    kind, J = problem
    scale = float(J.norm())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a documented fallback may speak; it must not raise
        d64 = balancers.get(name).aggregate(J)
        d32 = balancers.get(name).aggregate(J.float())
    assert d32.dtype == torch.float32
    assert torch.isfinite(d64).all() and torch.isfinite(d32).all()
    if name not in UNBOUNDED:  # no blow-up
        assert float(d64.norm()) <= 100 * scale and float(d32.norm()) <= 100 * scale
    if name in TORCHJD and well_posed(name, kind):
        ref = TORCHJD[name]()(J)
        # 1e-5 relative, plus rounding-level noise of the reference's pseudo-inverse (1e-7 ||J||)
        assert float((d64 - ref).abs().max()) <= 1e-5 * float(ref.abs().max()) + 1e-7 * scale, name
    if name in CONTINUOUS and (name not in RANK_DECIDING or rank_is_clear(J)):
        size = max(scale, float(d64.norm()))  # IMTL-G's update can be far longer than ||J||
        if name == "imtl_g":  # w = v / sum(v): the cancellation in sum(v) multiplies v's rounding by sum|w|
            size *= max(1.0, float(balancers.get(name).weights(J @ J.T).abs().sum()))
        error = float((d32.double() - d64).norm())
        assert error <= 1e-4 * size, f"{name}: float32 off by {error / size:.3g} of the update's scale"


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3), nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(3, 1) for _ in range(3)])

    def context(self, x: torch.Tensor, y: torch.Tensor, structure: str, present: torch.Tensor | None) -> StepContext:
        z = self.trunk(x)
        base = [((h(z).squeeze(1) - y[:, t]) ** 2).mean() for t, h in enumerate(self.heads)]
        if structure == "combined":  # rank-deficient
            losses = [base[0], base[1], base[0] + 2.0 * base[1]]
        elif structure == "opposite":
            losses = [base[0], 3.0 - 2.0 * base[0], base[2]]
        elif structure == "zero":  # a present task with a zero gradient
            losses = [base[0], base[1], 0.0 * base[2]]
        else:
            losses = base
        names = ["a", "b", "c"]
        return StepContext(torch.stack(losses), names, list(self.trunk.parameters()),
                           {n: list(h.parameters()) for n, h in zip(names, self.heads)}, representation=z, present=present)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.sampled_from(GRADIENT_METHODS), st.sampled_from([torch.float32, torch.float64]),
       st.sampled_from(["independent", "combined", "opposite", "zero"]),
       st.none() | st.lists(st.booleans(), min_size=3, max_size=3), st.integers(0, 1000))
def test_every_aggregator_survives_training_steps(name: str, dtype: torch.dtype, structure: str,
                                                  present: list[bool] | None, seed: int) -> None:
    """Three steps per mode through ``backward`` (the trainer's call), with any presence mask
    (all absent included): no exception, finite gradients everywhere."""
    mask = None if present is None else torch.tensor(present)
    for mode in balancers.modes(name):
        torch.manual_seed(seed)
        net = Net().to(dtype)
        method = balancers.get(name, mode=mode)
        method.setup(["a", "b", "c"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for step in range(3):
                x, y = torch.randn(5, 4, dtype=dtype), torch.randn(5, 3, dtype=dtype)
                for p in net.parameters():
                    p.grad = None
                w = method.backward(net.context(x, y, structure, mask))
                assert torch.isfinite(w).all()
                for p in net.parameters():
                    assert p.grad is None or torch.isfinite(p.grad).all(), f"{name} [{mode}] step {step}"
