"""Loss-weighting balancers: torchjd as an oracle where its definition is ours, hand
computations and the papers' defining properties elsewhere, end-to-end training, options and
checkpointed state.

torchjd's scalarizers (``torchjd.scalarization``) used as oracles, all compared in float64:
``UW``, ``IMTLL``, ``DWA``, ``Random`` (RLW), ``GeometricMean`` (GLS), ``FAMO`` and ``STCH``.
Deliberate differences are noted at each test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings, strategies as st
from torch import nn
from torchjd import scalarization as tjs

import polytask as pt
from polytask import balancers
from polytask.balancers import StepContext
from polytask.cli import main
from polytask.errors import PolytaskError
from polytask.models import HardSharing
from polytask.training import Callback, CheckpointCallback, Trainer
from polytask.workflow import prepare
from gradnorm_oracle import gradnorm_weight_gradient

OURS = ["uw", "dwa", "rlw", "gls", "imtl_l", "db_mtl", "famo", "stch", "gradnorm"]
F64 = torch.float64
OPTIONS = {"stch": {"warmup_epochs": 1}}  # so a short run reaches STCH proper


def loss_ctx(values: torch.Tensor, epoch: int = 0, step: int = 0, present: torch.Tensor | None = None) -> StepContext:
    """A context whose losses are leaves (no network): enough for the loss-only methods."""
    names = [f"t{i}" for i in range(values.numel())]
    return StepContext(losses=values, task_names=names, shared_params=[], task_params={n: [] for n in names}, step=step,
                       epoch=epoch, present=present)


def built(name: str, n_tasks: int, **options) -> balancers.Balancer:  # type: ignore[no-untyped-def]
    b = balancers.get(name, **options)
    b.setup([f"t{i}" for i in range(n_tasks)])
    return b


def applied(b: balancers.Balancer, values: torch.Tensor, epoch: int = 0,
            present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``b.backward`` on leaf losses; return (reported weights, d objective / d losses)."""
    leaf = values.clone().requires_grad_(True)
    w = b.backward(loss_ctx(leaf, epoch, present=present))
    assert leaf.grad is not None
    return w, leaf.grad


def oracle_weights(scalarizer: Callable[[torch.Tensor], torch.Tensor], values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(objective, gradient w.r.t. the losses) of a torchjd scalarizer."""
    leaf = values.clone().requires_grad_(True)
    out = scalarizer(leaf)
    out.backward()
    assert leaf.grad is not None
    return out.detach(), leaf.grad


class Toy:
    """Two (or more) regression tasks on a tiny shared MLP, in float64."""

    def __init__(self, seed: int = 0, scales: tuple[float, ...] = (1.0, 1.0), rows: int = 32) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(rows, 4, generator=g, dtype=F64)
        self.y = [s * (self.x @ torch.randn(4, 1, generator=g, dtype=F64)) for s in scales]
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.Tanh()).double()
        self.heads = nn.ModuleList([nn.Linear(6, 1) for _ in scales]).double()
        self.names = [f"t{i}" for i in range(len(scales))]

    def shared(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())

    def ctx(self, epoch: int = 0) -> StepContext:
        z = self.trunk(self.x)
        losses = torch.stack([((h(z) - y) ** 2).mean() for h, y in zip(self.heads, self.y)])
        return StepContext(
            losses=losses, task_names=self.names, shared_params=self.shared(),
            task_params={n: list(h.parameters()) for n, h in zip(self.names, self.heads)},
            representation=z, last_shared_params=list(self.trunk[2].parameters()), epoch=epoch,
        )

    def zero_grad(self) -> None:
        for p in [*self.trunk.parameters(), *self.heads.parameters()]:
            p.grad = None


FAST = settings(max_examples=10, deadline=None)
loss_values = st.floats(min_value=1e-2, max_value=50.0, allow_nan=False)


def losses_of(n_min: int = 2, n_max: int = 6) -> st.SearchStrategy[list[float]]:
    return st.lists(loss_values, min_size=n_min, max_size=n_max)


# ----------------------------------------------------------------------------------------------
# uncertainty weighting and IMTL-L: torchjd UW / IMTLL, and the paper formulas


@FAST
@given(values=losses_of(), log_var=st.lists(st.floats(-3.0, 3.0), min_size=6, max_size=6))
def test_uw_objective_is_kendalls_formula_and_matches_torchjd(values: list[float], log_var: list[float]) -> None:
    """The gradients UW writes out (for the network through the losses, and for the log-variances)
    are those of Kendall et al.'s objective, differentiated by autograd, and of torchjd's UW."""
    n = len(values)
    L = torch.tensor(values, dtype=F64)
    b = built("uw", n)
    with torch.no_grad():
        b.log_variance.data = torch.tensor(log_var[:n], dtype=F64)  # type: ignore[union-attr]
    w, grad = applied(b, L)
    # Kendall et al. 2018, eq. 7 written with sigma: sum_t L_t / (2 sigma_t^2) + log sigma_t
    leaf, s = L.clone().requires_grad_(True), torch.tensor(log_var[:n], dtype=F64, requires_grad=True)
    sigma = torch.exp(0.5 * s)
    paper_L, paper_s = torch.autograd.grad((leaf / (2 * sigma**2) + torch.log(sigma)).sum(), [leaf, s])
    torch.testing.assert_close(grad, paper_L)
    torch.testing.assert_close(b.log_variance.grad, paper_s)  # type: ignore[union-attr]
    oracle = tjs.UW(n).double()
    with torch.no_grad():
        oracle.log_var.copy_(torch.tensor(log_var[:n], dtype=F64))
    _, oracle_L = oracle_weights(oracle, L)
    torch.testing.assert_close(grad, oracle_L)
    torch.testing.assert_close(b.log_variance.grad, oracle.log_var.grad)  # type: ignore[union-attr]
    torch.testing.assert_close(w, 1 / (2 * sigma.detach() ** 2))  # the reported weight is the coefficient of L_t


def test_uw_log_variance_is_pulled_to_log_loss() -> None:
    """At fixed L_t the optimum of 1/2 e^-s L + s/2 is s = log L (Kendall et al.): the gradient
    in s vanishes there and points back towards it from either side."""
    L = torch.tensor([0.3, 4.0, 1.0], dtype=F64)
    for shift, sign in ((0.0, 0.0), (0.5, 1.0), (-0.5, -1.0)):
        b = built("uw", 3)
        b.log_variance.data = torch.log(L) + shift  # type: ignore[union-attr]
        b.backward(loss_ctx(L.clone().requires_grad_(True)))
        grad = b.log_variance.grad  # type: ignore[union-attr]
        if sign == 0.0:
            torch.testing.assert_close(grad, torch.zeros(3, dtype=F64))
        else:
            assert (torch.sign(grad) == sign).all()


@FAST
@given(values=losses_of(), scale=st.lists(st.floats(-3.0, 3.0), min_size=6, max_size=6))
def test_imtl_l_matches_torchjd(values: list[float], scale: list[float]) -> None:
    n = len(values)
    L = torch.tensor(values, dtype=F64)
    b = built("imtl_l", n)
    b.log_scale.data = torch.tensor(scale[:n], dtype=F64)  # type: ignore[union-attr]
    oracle = tjs.IMTLL(n).double()
    with torch.no_grad():
        oracle.log_scale.copy_(torch.tensor(scale[:n], dtype=F64))
    w, grad = applied(b, L)
    value, oracle_grad = oracle_weights(oracle, L)
    torch.testing.assert_close(grad, oracle_grad)
    torch.testing.assert_close(w, torch.exp(torch.tensor(scale[:n], dtype=F64)))
    # the learned scales' gradient: d/ds (e^s L - s) = e^s L - 1, by hand and by autograd in torchjd's IMTLL
    torch.testing.assert_close(b.log_scale.grad, torch.exp(torch.tensor(scale[:n], dtype=F64)) * L - 1)  # type: ignore[union-attr]
    torch.testing.assert_close(b.log_scale.grad, oracle.log_scale.grad)  # type: ignore[union-attr]


# ----------------------------------------------------------------------------------------------
# DWA: torchjd DWA, and the loss-ratio softmax computed by hand


@FAST
@given(
    epochs=st.lists(st.lists(losses_of(3, 3), min_size=1, max_size=3), min_size=3, max_size=5),
    temperature=st.floats(0.1, 5.0),
)
def test_dwa_weights_are_the_loss_ratio_softmax_and_match_torchjd(epochs: list[list[list[float]]], temperature: float) -> None:
    b = built("dwa", 3, temperature=temperature)
    oracle = tjs.DWA(temperature=temperature)
    averages: list[np.ndarray] = []
    for e, batches in enumerate(epochs):
        for batch in batches:
            L = torch.tensor(batch, dtype=F64)
            w, grad = applied(b, L, epoch=e)
            torch.testing.assert_close(grad, w)
            _, expected = oracle_weights(oracle, L)
            torch.testing.assert_close(w, expected)
            if len(averages) < 2:
                hand = np.ones(3)
            else:
                r = averages[-1] / averages[-2]
                expo = np.exp((r - r.max()) / temperature)
                hand = 3 * expo / expo.sum()
            np.testing.assert_allclose(w.numpy(), hand, rtol=1e-10)
        oracle.step()
        averages.append(np.mean(np.array(batches), axis=0))


def test_dwa_favours_the_task_whose_loss_fell_least() -> None:
    b = built("dwa", 2)
    for e, L in enumerate([[1.0, 1.0], [0.5, 0.95], [0.25, 0.9]]):
        w, _ = applied(b, torch.tensor(L, dtype=F64), epoch=e)
    assert w[1] > w[0] and float(w.sum()) == pytest.approx(2.0)


# ----------------------------------------------------------------------------------------------
# RLW: torchjd Random draws the same softmax-of-normal weights from the global generator


@FAST
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 12))
def test_rlw_first_draw_matches_torchjd_random_under_the_same_seed(seed: int, n: int) -> None:
    L = torch.linspace(0.5, 3.0, n, dtype=F64)
    w, grad = applied(built("rlw", n, seed=seed), L)
    torch.testing.assert_close(grad, w)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, expected = oracle_weights(tjs.Random(), L)
    torch.testing.assert_close(w, expected)


@FAST
@given(seed=st.integers(0, 10_000), distribution=st.sampled_from(["normal", "uniform", "dirichlet"]))
def test_rlw_same_seed_same_weights_on_the_simplex(seed: int, distribution: str) -> None:
    def run(s: int) -> list[torch.Tensor]:
        b = built("rlw", 4, seed=s, distribution=distribution)
        return [applied(b, torch.ones(4, dtype=F64))[0] for _ in range(5)]

    a, again, other = run(seed), run(seed), run(seed + 1)
    for x, y in zip(a, again):
        torch.testing.assert_close(x, y)
    assert any(not torch.allclose(x, y) for x, y in zip(a, other))
    for x in a:
        assert (x > 0).all() and float(x.sum()) == pytest.approx(1.0)
    assert any(not torch.allclose(x, a[0]) for x in a[1:])  # fresh weights every step


def test_rlw_leaves_the_global_random_state_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    applied(built("rlw", 3), torch.ones(3))
    torch.testing.assert_close(torch.rand(3), expected)


# ----------------------------------------------------------------------------------------------
# GLS: torchjd GeometricMean, and the gradient of (prod L)^(1/T) through a network


@FAST
@given(values=losses_of(2, 8))
def test_gls_matches_torchjd_geometric_mean(values: list[float]) -> None:
    L = torch.tensor(values, dtype=F64)
    w, grad = applied(built("gls", len(values)), L)
    value, expected = oracle_weights(tjs.GeometricMean(), L)
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(w, expected)  # reported weights are the coefficients of grad L_t
    torch.testing.assert_close(w, value / (len(values) * L))


@FAST
@given(seed=st.integers(0, 1000), scale=st.floats(0.1, 20.0))
def test_gls_gradient_is_the_gradient_of_the_geometric_mean(seed: int, scale: float) -> None:
    toy = Toy(seed, scales=(1.0, scale))
    params = [*toy.trunk.parameters(), *toy.heads.parameters()]
    ctx = toy.ctx()
    expected = torch.autograd.grad(torch.prod(ctx.losses) ** 0.5, params, retain_graph=True)
    toy.zero_grad()
    built("gls", 2).backward(ctx)
    for p, g in zip(params, expected):
        torch.testing.assert_close(p.grad, g)


def test_gls_leaves_a_task_without_labels_out_of_the_geometric_mean() -> None:
    """A task declared absent (no label in the batch): the others follow the geometric mean of
    the present tasks, as torchjd's GeometricMean computes on them alone; the absent task gets 0.
    Whatever its loss value (0 for a masked loss), it is not read."""
    for absent_value in (0.0, 3.0):
        L = torch.tensor([absent_value, 0.8, 2.5], dtype=F64)
        w, grad = applied(built("gls", 3), L, present=torch.tensor([False, True, True]))
        _, expected = oracle_weights(tjs.GeometricMean(), L[1:])
        torch.testing.assert_close(w[1:], expected)
        torch.testing.assert_close(grad, w)
        assert float(w[0]) == 0.0
    w_none, _ = applied(built("gls", 2), torch.ones(2, dtype=F64), present=torch.zeros(2, dtype=torch.bool))
    assert torch.equal(w_none, torch.zeros(2, dtype=F64))


def test_gls_without_a_mask_keeps_a_zero_loss_in_the_product() -> None:
    """Without a mask every task is present: a loss of exactly 0 is a loss of 0 (floored at
    1e-12), not an absent task, as the definition ``(prod L_t)^(1/T)`` says. The floored objective
    does not move with that loss, so its weight is 0 (it used to be reported as
    ``L / (3 * 1e-12)`` while the gradient applied gave it 0), and the gradient is the
    objective's."""
    L = torch.tensor([0.0, 0.8, 2.5], dtype=F64)
    w, grad = applied(built("gls", 3), L)
    value = (1e-12 * 0.8 * 2.5) ** (1 / 3)
    torch.testing.assert_close(w, torch.tensor([0.0, value / (3 * 0.8), value / (3 * 2.5)], dtype=F64))
    leaf = L.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(torch.exp(torch.log(leaf.clamp_min(1e-12)).mean()), leaf)
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(grad, w)


# ----------------------------------------------------------------------------------------------
# FAMO: torchjd FAMO (same-batch update) as the oracle, fed the next-batch losses we use


@FAST
@given(
    steps=st.lists(losses_of(3, 3), min_size=2, max_size=8), lr=st.floats(1e-3, 0.5), wd=st.floats(0.0, 1e-2),
    bounded=st.booleans(),
)
def test_famo_matches_torchjd_fed_with_the_next_batch_losses(steps: list[list[float]], lr: float, wd: float, bounded: bool) -> None:
    """torchjd's ``update`` takes the losses after the step on the same batch; our cheap variant
    uses the next step's losses instead, so feeding torchjd those same values must agree."""
    bounds = (0.5 * np.min(np.array(steps), axis=0)).tolist() if bounded else None
    b = built("famo", 3, lr=lr, weight_decay=wd, min_losses=bounds)
    oracle = tjs.FAMO(3, None if bounds is None else torch.tensor(bounds), lr=lr, weight_decay=wd).double()
    for k, values in enumerate(steps):
        L = torch.tensor(values, dtype=F64)
        if k > 0:
            oracle.update(L)
        _, expected = oracle_weights(oracle, L)
        w, grad = applied(b, L)
        torch.testing.assert_close(grad, w)
        torch.testing.assert_close(w, expected)
        assert float(w.sum()) == pytest.approx(1.0)


@FAST
@given(grads=st.lists(st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3), min_size=1, max_size=12),
       lr=st.floats(1e-3, 0.5), wd=st.sampled_from([0.0, 1e-3, 0.1]), dtype=st.sampled_from([torch.float32, F64]))
def test_famo_logit_adam_is_torch_adam_exactly(grads: list[list[float]], lr: float, wd: float, dtype: torch.dtype) -> None:
    """FAMO's logits step with Adam written out (torch.optim.Adam's step cost more than the rest of
    FAMO together); it must give torch.optim.Adam's values bit for bit, step after step."""
    from polytask.balancers.famo import _LogitAdam

    ours, theirs = torch.tensor([0.3, -0.2, 0.0], dtype=dtype), torch.tensor([0.3, -0.2, 0.0], dtype=dtype, requires_grad=True)
    adam, reference = _LogitAdam(ours, lr, wd), torch.optim.Adam([theirs], lr=lr, weight_decay=wd)
    for g in grads:
        adam.step(ours, torch.tensor(g, dtype=dtype))
        theirs.grad = torch.tensor(g, dtype=dtype)
        reference.step()
        assert torch.equal(ours, theirs.detach())


def test_famo_loads_the_torch_adam_state_that_earlier_versions_saved() -> None:
    """Models saved before the written-out Adam hold ``optimizer`` (torch.optim.Adam's state dict,
    its state keyed by a number that the JSON round trip makes text); they continue as torch's
    Adam would."""
    b = built("famo", 3)
    steps = [torch.tensor(v, dtype=torch.float32) for v in ([1.0, 2.0, 0.5], [0.9, 1.5, 0.45], [0.8, 1.4, 0.44])]
    for L in steps:
        applied(b, L)
    state = b.get_extra_state()  # type: ignore[attr-defined]
    logits = state["logits"].clone().requires_grad_(True)
    torch_adam = torch.optim.Adam([logits], lr=0.025, weight_decay=1e-3)
    logits.grad = torch.zeros(3)
    torch_adam.step()  # a step whose state is then overwritten with ours (same values, torch's layout)
    torch_adam.state[logits] = {"step": torch.tensor(float(state["adam"]["step"])), "exp_avg": state["adam"]["exp_avg"].clone(),
                                "exp_avg_sq": state["adam"]["exp_avg_sq"].clone()}
    saved = torch_adam.state_dict()
    old = {k: v for k, v in state.items() if k != "adam"} | {"optimizer": {"state": {"0": saved["state"][0]}, "param_groups": saved["param_groups"]}}
    c = built("famo", 3)
    c.set_extra_state(old)  # type: ignore[attr-defined]
    L = torch.tensor([0.7, 1.3, 0.43])
    torch.testing.assert_close(applied(c, L)[0], applied(b, L)[0], rtol=0, atol=0)


@FAST
@given(fast=st.floats(0.05, 0.3), slow_fraction=st.floats(0.0, 0.5))
def test_famo_shifts_weight_to_the_task_whose_loss_decreases_slower(fast: float, slow_fraction: float) -> None:
    """FAMO's logit update raises z_t for tasks whose log-loss falls less per step."""
    slow = fast * slow_fraction
    b = built("famo", 2)
    for k in range(30):
        L = torch.tensor([np.exp(-fast * k), 2.0 * np.exp(-slow * k)], dtype=F64)
        applied(b, L)
    z = b.task_weights(torch.zeros(2, dtype=F64))  # type: ignore[attr-defined]
    assert z[1] > z[0] + 0.05


def test_famo_update_ignores_a_task_without_labels_in_a_batch() -> None:
    b = built("famo", 2)
    applied(b, torch.tensor([1.0, 1.0]))
    w, _ = applied(b, torch.tensor([0.0, 0.9]), present=torch.tensor([False, True]))
    assert torch.isfinite(w).all()
    z = b.task_weights(torch.zeros(2))  # type: ignore[attr-defined]
    assert z[0] > z[1]  # only task 1's decrease counted: weight moves to task 0


def test_famo_gives_an_absent_task_weight_zero_and_keeps_the_others_scale() -> None:
    """A task without labels in the batch (loss exactly 0) must not shrink the others' weights:
    the present tasks keep FAMO's weights z_t / L_t normalised over the present tasks."""
    b = built("famo", 3)
    applied(b, torch.tensor([1.0, 2.0, 0.5], dtype=F64))
    L = torch.tensor([0.0, 1.5, 0.25], dtype=F64)
    w, grad = applied(b, L, present=torch.tensor([False, True, True]))
    z = b.task_weights(torch.zeros(3, dtype=F64))  # type: ignore[attr-defined]
    expected = torch.tensor([0.0, float(z[1] / 1.5), float(z[2] / 0.25)], dtype=F64)
    torch.testing.assert_close(w, expected / expected.sum())
    torch.testing.assert_close(grad, w)
    assert float(w.sum()) == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# STCH: torchjd STCH on log-losses with the warm-up mean as reference


@FAST
@given(
    warm=st.lists(losses_of(3, 3), min_size=1, max_size=4),
    later=losses_of(3, 3),
    mu=st.floats(0.05, 3.0),
)
def test_stch_matches_torchjd_after_warmup(warm: list[list[float]], later: list[float], mu: float) -> None:
    """torchjd's STCH is the generic scalarization; the MTL form is T * STCH(log L) with
    preference 1 and reference log Lbar, which is what we build it into."""
    b = built("stch", 3, mu=mu, warmup_epochs=2)
    for values in warm:
        for epoch in (0, 1):
            L = torch.tensor(values, dtype=F64)
            w, grad = applied(b, L, epoch=epoch)
            torch.testing.assert_close(grad, 1 / (L + 1e-8))  # warm-up: sum_t log L_t
    reference = torch.tensor(np.mean(np.array(warm), axis=0), dtype=F64) + 1e-8
    oracle = tjs.STCH(mu, weights=torch.ones(3, dtype=F64), reference=torch.log(reference))
    L = torch.tensor(later, dtype=F64)
    w, grad = applied(b, L, epoch=2)
    _, expected = oracle_weights(lambda v: 3 * oracle(torch.log(v + 1e-8)), L)
    torch.testing.assert_close(grad, expected)
    torch.testing.assert_close(w, expected)


def test_stch_approaches_the_max_as_mu_shrinks() -> None:
    """Smooth Tchebycheff upper-bounds the Tchebycheff max and tends to it as mu -> 0."""
    L = torch.tensor([0.5, 2.0, 1.0], dtype=F64)
    ref = [1.0, 1.0, 1.0]
    gaps = []
    for mu in (1.0, 0.1, 0.01):
        b = built("stch", 3, mu=mu, warmup_epochs=1, reference=ref)
        ctx = loss_ctx(L, epoch=1)
        value = float(b.value(ctx))  # type: ignore[attr-defined]
        tcheb = 3 * float(torch.log(L + 1e-8).max())
        assert value >= tcheb - 1e-12
        gaps.append(value - tcheb)
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 0.05


# ----------------------------------------------------------------------------------------------
# GradNorm: the weights' gradient against autograd of L_grad; norms driven together


def test_gradnorm_weight_gradient_equals_autograd_of_the_gradnorm_loss() -> None:
    toy = Toy(1, scales=(1.0, 6.0))
    b = built("gradnorm", 2, alpha=1.2)
    # a first step records L(0); perturb the weights so the second step is not at w = 1
    b.backward(toy.ctx())
    with torch.no_grad():
        b.loss_weights.copy_(torch.tensor([0.7, 1.6]))  # type: ignore[union-attr]
        for p in toy.trunk.parameters():
            p.add_(0.05 * torch.randn_like(p))
    b.loss_weights.grad = None  # type: ignore[union-attr]
    ctx = toy.ctx()
    expected = gradnorm_weight_gradient(b, ctx, alpha=1.2)
    b.backward(ctx)
    torch.testing.assert_close(b.loss_weights.grad.to(F64), expected, rtol=1e-5, atol=1e-7)  # type: ignore[union-attr]


def converge_gradnorm_weights(b: balancers.Balancer, toy: Toy, steps: int = 120) -> list[float]:
    """Optimize only GradNorm's weights (the network is held fixed), with a decaying step size."""
    b.loss_weights.data = b.loss_weights.data.double()  # type: ignore[attr-defined]
    opt = torch.optim.Adam(b.parameters(), lr=0.05)
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 - k / steps)
    sums = []
    for _ in range(steps):
        opt.zero_grad()
        toy.zero_grad()
        sums.append(float(b.backward(toy.ctx()).sum()))
        opt.step()
        schedule.step()
    b.normalized_weights()  # type: ignore[attr-defined]
    return sums


def test_gradnorm_drives_task_gradient_norms_together() -> None:
    """Two tasks whose gradients at the last shared layer differ ~30x in norm: GradNorm's weights
    bring G_t = w_t ||grad_W L_t|| together (alpha = 0: the target is the mean norm)."""
    toy = Toy(2, scales=(1.0, 10.0), rows=48)
    b = built("gradnorm", 2, alpha=0.0)
    G0 = b.gradient_norms(toy.ctx())  # type: ignore[attr-defined]
    sums = converge_gradnorm_weights(b, toy)
    G = b.gradient_norms(toy.ctx())  # type: ignore[attr-defined]
    assert float(G0.max() / G0.min()) > 20
    assert float(G.max() / G.min()) < 1.05
    assert sums == pytest.approx([2.0] * len(sums))  # weights renormalized to sum T every step
    assert b.loss_weights[1] < b.loss_weights[0]  # type: ignore[index]


def test_gradnorm_targets_norms_proportional_to_relative_inverse_training_rate() -> None:
    """With task 0 having trained half as slowly (L/L(0) twice task 1's), GradNorm's target is
    G_0 / G_1 = (r_0 / r_1)^alpha = 2^alpha (Chen et al., eq. 2). Both targets cannot be met at
    once (their mean is not Gbar), so the fixed point is near, not at, 2^alpha: 10% tolerance."""
    ratios = {}
    for alpha in (0.5, 1.5):
        toy = Toy(4, scales=(1.0, 3.0), rows=48)
        b = built("gradnorm", 2, alpha=alpha)
        b.backward(toy.ctx())
        b.initial_losses = toy.ctx().losses.detach() * torch.tensor([0.5, 1.0], dtype=F64)  # type: ignore[attr-defined]
        b.loss_weights.data.fill_(1.0)  # type: ignore[attr-defined]
        converge_gradnorm_weights(b, toy)
        G = b.gradient_norms(toy.ctx())  # type: ignore[attr-defined]
        ratios[alpha] = float(G[0] / G[1])
        assert ratios[alpha] == pytest.approx(2**alpha, rel=0.1)
    assert 1.0 < ratios[0.5] < ratios[1.5]


# ----------------------------------------------------------------------------------------------
# DB-MTL: a per-task backward loop (T passes) as the oracle of the batched version


def test_db_mtl_matches_a_per_task_loop_and_balances_gradient_magnitudes() -> None:
    toy = Toy(3, scales=(1.0, 8.0, 0.3))
    b = built("db_mtl", 3, beta=0.8, beta_sigma=0.5)
    shared = toy.shared()
    ema = torch.zeros(3, sum(p.numel() for p in shared), dtype=F64)
    for step in range(1, 4):
        ctx = toy.ctx()
        logs = torch.log(ctx.losses + 1e-8)
        rows = []
        for t in range(3):  # the LibMTL-style loop: one backward pass per task
            g = torch.autograd.grad(logs[t], shared, retain_graph=True)
            rows.append(torch.cat([x.reshape(-1) for x in g]))
        head_grads = torch.autograd.grad(logs.sum(), [p for h in toy.heads for p in h.parameters()], retain_graph=True)
        beta_k = 0.8 / step**0.5
        ema = beta_k * ema + (1 - beta_k) * torch.stack(rows)
        scale = ema.norm(dim=1).max() / (ema.norm(dim=1) + 1e-8)
        toy.zero_grad()
        alpha = b.backward(ctx)
        torch.testing.assert_close(alpha, scale)
        torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in shared]), scale @ ema)
        for p, g in zip([p for h in toy.heads for p in h.parameters()], head_grads):
            torch.testing.assert_close(p.grad, g)
        scaled = (scale[:, None] * ema).norm(dim=1)
        torch.testing.assert_close(scaled, scaled.max().expand(3), rtol=1e-6, atol=0)
        with torch.no_grad():
            for p in shared:
                p.sub_(0.05 * p.grad)


@pytest.mark.parametrize("name", OURS)
def test_a_task_without_labels_in_the_batch_gives_finite_weights_and_gradients(name: str) -> None:
    """A masked loss with no labelled row is exactly 0 (with zero gradient): declared absent or
    not (a present task whose loss is 0), log-based methods must not turn it into NaN, and a
    declared absent task gets no weight where the method reports simplex weights."""
    for declared in (True, False):
        toy = Toy(5, scales=(1.0, 2.0))
        b = built(name, 2, **OPTIONS.get(name, {}))
        for epoch in range(3):
            ctx = toy.ctx(epoch)
            ctx.losses = ctx.losses * torch.tensor([1.0, 0.0 if epoch == 1 else 1.0], dtype=F64)
            if declared:
                ctx.present = torch.tensor([True, epoch != 1])
            toy.zero_grad()
            w = b.backward(ctx)
            assert torch.isfinite(w).all()
            if declared and epoch == 1 and name in ("gls", "famo", "stch", "db_mtl"):
                assert float(w[1]) == 0.0
            for p in [*toy.trunk.parameters(), *toy.heads.parameters()]:
                assert p.grad is None or torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", ["uw", "imtl_l", "gradnorm"])
def test_an_absent_tasks_learnable_weight_gets_no_gradient(name: str) -> None:
    """UW's and IMTL-L's terms and GradNorm's L_grad leave an absent task out, so its learnable
    quantity is not pulled by a loss of 0 (UW's ``1/2 s_t`` would drag ``s_t`` down)."""
    toy = Toy(6, scales=(1.0, 2.0, 0.5))
    b = built(name, 3)
    ctx = toy.ctx()
    ctx.losses = ctx.losses * torch.tensor([1.0, 0.0, 1.0], dtype=F64)
    ctx.present = torch.tensor([True, False, True])
    b.backward(ctx)
    grad = next(iter(b.parameters())).grad
    assert grad is not None and float(grad[1]) == 0.0 and float(grad[0]) != 0.0


def test_dwa_averages_each_task_over_the_batches_where_it_is_present() -> None:
    b = built("dwa", 2)
    applied(b, torch.tensor([1.0, 4.0], dtype=F64), epoch=0)
    applied(b, torch.tensor([3.0, 0.0], dtype=F64), epoch=0, present=torch.tensor([True, False]))
    applied(b, torch.tensor([1.0, 1.0], dtype=F64), epoch=1)
    averages = b.get_extra_state()["_averages"]  # type: ignore[attr-defined]
    torch.testing.assert_close(averages[0], torch.tensor([2.0, 4.0], dtype=F64))  # not (4 + 0) / 2 for task 1


def test_db_mtl_freezes_an_absent_tasks_gradient_average() -> None:
    toy = Toy(7, scales=(1.0, 3.0))
    b = built("db_mtl", 2)
    b.backward(toy.ctx())
    ema = b.buffer.clone()  # type: ignore[union-attr]
    ctx = toy.ctx()
    ctx.present = torch.tensor([True, False])
    toy.zero_grad()
    alpha = b.backward(ctx)
    torch.testing.assert_close(b.buffer[1], ema[1])  # type: ignore[index]
    assert not torch.equal(b.buffer[0], ema[0]) and float(alpha[1]) == 0.0  # type: ignore[index]


def test_gradnorm_without_shared_parameters_is_a_clear_error() -> None:
    with pytest.raises(PolytaskError, match="'gradnorm' needs shared parameters"):
        built("gradnorm", 2).backward(loss_ctx(torch.ones(2, requires_grad=True)))


# ----------------------------------------------------------------------------------------------
# end to end, options and state


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    from polytask.synthetic import related_tasks

    data, _ = related_tasks(n_rows=160, n_features=5, n_tasks=2, noise=0.1, seed=1)
    return data


@pytest.mark.parametrize("name", OURS)
def test_each_method_trains_two_tasks_end_to_end(frame: pd.DataFrame, name: str) -> None:
    cfg = pt.TrainConfig(epochs=4, batch_size=32, lr=5e-3, seed=0, balancer=name, balancer_options=OPTIONS.get(name, {}))
    report = pt.fit(frame, ["task0", "task1"], config=cfg)
    summary = report.mtl.summary
    for h in summary["history"]:
        assert all(np.isfinite(v) for v in h["train_loss"].values())
        assert all(np.isfinite(v) for v in h["val_loss"].values())
    first = summary["history"][0]["val_loss"]
    last = summary["history"][-1]["val_loss"]
    assert sum(last.values()) < sum(first.values())  # it learned
    weights = summary["applied_weights"]
    assert set(weights) == {"task0", "task1"} and all(len(v) == 4 for v in weights.values())
    assert all(np.isfinite(x) and x > 0 for v in weights.values() for x in v)
    assert summary["balancer"] == name
    assert set(report.to_dict()["mtl"]["mean_applied_weights"]) == {"task0", "task1"}


class StepWeights(Callback):
    def __init__(self) -> None:
        self.seen: list[tuple[int, torch.Tensor]] = []

    def on_step_end(self, trainer, ctx, weights) -> None:  # type: ignore[no-untyped-def]
        self.seen.append((ctx.epoch, torch.as_tensor(weights).detach().clone()))


@pytest.mark.parametrize("name", ["famo", "rlw", "dwa"])
def test_logged_weights_are_the_epoch_means_of_the_methods_weights(frame: pd.DataFrame, name: str) -> None:
    p = prepare(frame, ["task0", "task1"], seed=0)
    torch.manual_seed(0)
    net = HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))
    spy = StepWeights()
    result = Trainer(net, p.tasks, p.encoders, pt.TrainConfig(epochs=4, batch_size=32, balancer=name), callbacks=[spy]).fit(p.train, p.val)
    for epoch in range(4):
        mean = torch.stack([w for e, w in spy.seen if e == epoch]).mean(0)
        logged = [result.applied_weights[t][epoch] for t in ("task0", "task1")]
        np.testing.assert_allclose(logged, mean.numpy(), rtol=1e-5)
    if name != "dwa":  # dwa is uniform for two epochs; famo and rlw move from the start
        assert len({round(float(w[0]), 6) for _, w in spy.seen}) > 1


STATEFUL = ["famo", "dwa", "uw", "rlw", "stch", "gradnorm", "db_mtl"]  # gls has no state; imtl_l is uw's twin


@pytest.mark.parametrize("name", STATEFUL)
def test_checkpoint_resume_restores_state_and_matches_an_uninterrupted_run(frame: pd.DataFrame, tmp_path: Path, name: str) -> None:
    p = prepare(frame, ["task0", "task1"], seed=0)
    opts = OPTIONS.get(name, {})
    cfg = pt.TrainConfig(epochs=4, batch_size=32, early_stopping="none", seed=0, balancer=name, balancer_options=opts)

    def net() -> HardSharing:
        torch.manual_seed(0)
        return HardSharing(p.train.x.shape[1], p.output_dims, trunk=(8,))

    full = Trainer(net(), p.tasks, p.encoders, cfg)
    full.fit(p.train, p.val)
    first = Trainer(net(), p.tasks, p.encoders, pt.TrainConfig(**{**cfg.to_dict(), "epochs": 2}), callbacks=[CheckpointCallback(tmp_path)])
    first.fit(p.train, p.val)
    resumed = Trainer(net(), p.tasks, p.encoders, cfg)
    resumed.fit(p.train, p.val, resume_from=str(tmp_path))
    for a, b in zip(full.network.parameters(), resumed.network.parameters()):
        assert torch.equal(a, b)  # bit-identical to the uninterrupted run
    assert_same_state(full.balancer.state_dict(), resumed.balancer.state_dict())
    for a, b in zip(full.balancer.parameters(), resumed.balancer.parameters()):
        torch.testing.assert_close(a, b)
    for h_full, h_resumed in zip(full.history, resumed.history, strict=True):
        assert h_full["weights"] == pytest.approx(h_resumed["weights"])


def assert_same_state(a: object, b: object) -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor)
        torch.testing.assert_close(a, b.to(a.device))
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b)
        for k in a:
            assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y)
    else:
        assert a == b


@pytest.mark.parametrize("name", ["famo", "dwa", "uw", "rlw"])
def test_state_survives_a_checkpoint_round_trip_and_continues_identically(tmp_path: Path, name: str) -> None:
    """state_dict -> checkpoint files -> load_state_dict, then both copies step the same."""
    from polytask.serialization import flatten_state, load_tensors, save_tensors, unflatten_state

    gen = torch.Generator().manual_seed(0)
    seq = [torch.rand(3, generator=gen) + 0.1 for _ in range(8)]
    a = built(name, 3)
    for k, L in enumerate(seq[:4]):
        applied(a, L, epoch=k // 2)
    tensors, tree = flatten_state({"state": a.state_dict()})  # parameters and extra state
    save_tensors(tmp_path / "s.safetensors", tensors)
    (tmp_path / "s.json").write_text(json.dumps(tree))
    restored = unflatten_state(json.loads((tmp_path / "s.json").read_text()), load_tensors(tmp_path / "s.safetensors"))
    b = built(name, 3)
    b.load_state_dict(restored["state"])
    for k, L in enumerate(seq[4:], start=4):
        wa, _ = applied(a, L, epoch=k // 2)
        wb, _ = applied(b, L, epoch=k // 2)
        torch.testing.assert_close(wa, wb)


def test_loss_weighting_methods_take_no_mode() -> None:
    for name in OURS:
        assert balancers.modes(name) == ()
        with pytest.raises(PolytaskError, match="takes no option 'mode'"):
            balancers.get(name, mode="exact")


def test_unknown_option_lists_the_valid_ones() -> None:
    with pytest.raises(PolytaskError, match=r"balancer 'famo' takes no option 'temperature' \(options: lr, weight_decay, min_losses\)"):
        balancers.get("famo", temperature=2)


@pytest.mark.parametrize(
    ("name", "options", "option"),
    [
        ("uw", {"init_log_variance": "big"}, "init_log_variance"),
        ("dwa", {"temperature": 0}, "temperature"),
        ("dwa", {"temperature": float("nan")}, "temperature"),
        ("rlw", {"seed": -1}, "seed"),
        ("rlw", {"seed": 1.5}, "seed"),
        ("rlw", {"distribution": "cauchy"}, "distribution"),
        ("db_mtl", {"beta": 1.0}, "beta"),
        ("db_mtl", {"beta_sigma": -0.1}, "beta_sigma"),
        ("famo", {"lr": 0}, "lr"),
        ("famo", {"weight_decay": -1}, "weight_decay"),
        ("famo", {"min_losses": "zero"}, "min_losses"),
        ("stch", {"mu": -1}, "mu"),
        ("stch", {"warmup_epochs": 0}, "warmup_epochs"),
        ("stch", {"reference": [1.0, 0.0]}, "reference"),
        ("gradnorm", {"alpha": -0.5}, "alpha"),
        ("gradnorm", {"alpha": True}, "alpha"),
    ],
)
def test_bad_option_values_name_the_option(name: str, options: dict, option: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PolytaskError, match=f"balancer '{name}': option '{option}'"):
        balancers.get(name, **options)


def test_per_task_option_length_is_checked_at_setup() -> None:
    with pytest.raises(PolytaskError, match="'min_losses' has 1 values for 2 tasks"):
        built("famo", 2, min_losses=[0.0])
    with pytest.raises(PolytaskError, match="'reference' has 3 values for 2 tasks"):
        built("stch", 2, reference=[1.0, 1.0, 1.0])


def test_options_are_recorded() -> None:
    assert balancers.get("dwa", temperature=3).options() == {"temperature": 3.0}
    assert balancers.get("famo", lr=0.1).options() == {"lr": 0.1, "weight_decay": 1e-3, "min_losses": None}
    assert balancers.get("stch", mu=0.5, warmup_epochs=2).options() == {"mu": 0.5, "warmup_epochs": 2, "reference": None}
    assert balancers.get("rlw", seed=7, distribution="dirichlet").options() == {"seed": 7, "distribution": "dirichlet"}
    assert balancers.get("db_mtl").options() == {"beta": 0.9, "beta_sigma": 0.0}
    assert balancers.get("gradnorm", alpha=0.5).options() == {"alpha": 0.5}
    assert balancers.get("uw", init_log_variance=-0.5).options() == {"init_log_variance": -0.5}


def test_cli_fit_with_a_loss_weighting_balancer(frame: pd.DataFrame, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    code = main(["fit", str(data), "-t", "task0", "-t", "task1", "--balancer", "famo", "--balancer-option", "lr=0.05",
                 "--epochs", "3", "--trunk", "8", "--quiet", "--json", "--out", str(tmp_path / "m")])
    out = capsys.readouterr()
    assert code == 0, out.err
    report = json.loads(out.out)
    assert report["mtl"]["balancer"] == "famo"
    weights = report["mtl"]["mean_applied_weights"]
    assert weights["task0"] + weights["task1"] == pytest.approx(1.0, abs=1e-4)  # FAMO's weights sum to 1
    code = main(["fit", str(data), "-t", "task0", "-t", "task1", "--balancer", "dwa", "--balancer-option", "temperature=-1",
                 "--quiet", "--out", str(tmp_path / "m2")])
    err = capsys.readouterr().err
    assert code == 2 and "balancer 'dwa': option 'temperature' must be a number > 0, got -1" in err and "Traceback" not in err
