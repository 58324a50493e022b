"""The gradient engine against one backward pass per task, in both modes, on several graph shapes."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from polytask import balancers
from polytask.balancers import StepContext
from polytask.errors import PolytaskError
from polytask.gradients import per_task_gradient_norms, shared_gradients



@pytest.fixture
def float64():  # type: ignore[no-untyped-def]
    """These tests compare to 1e-9, so the networks are built in float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


class Net(nn.Module):
    """A trunk of linear layers (the engine's fast path) plus pieces it must leave to the generic
    path: a LayerNorm, a weight used twice (tied), an input-dependent decode."""

    def __init__(self, n_tasks: int, tied: bool = False, norm: bool = False, skip: bool = False, linear_heads: bool = False) -> None:
        super().__init__()
        self.l1, self.l2 = nn.Linear(5, 7), nn.Linear(7, 6, bias=False)
        self.norm = nn.LayerNorm(6) if norm else None
        self.tied, self.skip = tied, skip
        self.heads = nn.ModuleList([
            nn.Sequential(nn.Linear(6, 1)) if linear_heads else nn.Sequential(nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 1))
            for _ in range(n_tasks)
        ])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.l1(x))
        if self.tied:
            h = h + 0.1 * torch.tanh(h @ self.l1.weight[:, :7].T if self.l1.weight.shape[1] >= 7 else self.l1(x))
        z = torch.relu(self.l2(h))
        return self.norm(z) if self.norm is not None else z

    def shared(self) -> list[nn.Parameter]:
        ps = list(self.l1.parameters()) + list(self.l2.parameters())
        return ps + (list(self.norm.parameters()) if self.norm is not None else [])

    def context(self, x: torch.Tensor, y: torch.Tensor, stacked: bool = True) -> StepContext:
        z = self.encode(x)
        outs = [h(z).squeeze(1) + (0.3 * self.l1.bias.sum() if self.skip else 0.0) for h in self.heads]
        per_task = [((o - y[:, t]) ** 2).mean() * (t + 1) for t, o in enumerate(outs)]
        alphas = torch.linspace(0.5, 1.5, len(outs))
        losses = torch.stack(per_task) * alphas if stacked else torch.cat([p.reshape(1) for p in per_task]) * alphas
        names = [f"t{i}" for i in range(len(outs))]
        return StepContext(losses, names, self.shared(), {n: list(h.parameters()) for n, h in zip(names, self.heads)}, representation=z)


def loop_jacobian(ctx: StepContext) -> torch.Tensor:
    rows = []
    for t in range(ctx.losses.shape[0]):
        gs = torch.autograd.grad(ctx.losses[t], ctx.shared_params, retain_graph=True, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(gs, ctx.shared_params)]))
    return torch.stack(rows)


def grads(params: list[nn.Parameter]) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])


def zero(net: nn.Module) -> None:
    for p in net.parameters():
        p.grad = None


SHAPES = [dict(), dict(norm=True), dict(tied=True), dict(skip=True)]


@pytest.mark.parametrize("shape", SHAPES, ids=["linear", "layernorm", "tied", "shared-outside-z"])
@pytest.mark.parametrize("stacked", [True, False], ids=["stack", "cat"])
def test_gramian_and_jacobian_equal_one_backward_per_task(float64, shape: dict, stacked: bool) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = Net(3, **shape)
    x, y = torch.randn(9, 5), torch.randn(9, 3)
    ctx = net.context(x, y, stacked)
    J = loop_jacobian(ctx)
    info = shared_gradients(ctx.losses, ctx.shared_params, [ctx.task_params[n] for n in ctx.task_names], ctx.representation)
    torch.testing.assert_close(info.gramian, J @ J.T, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(info.jacobian(), J, rtol=1e-10, atol=1e-12)
    # each task's own parameters got the gradient of its own loss, unweighted by the method
    for t, name in enumerate(ctx.task_names):
        own = torch.autograd.grad(ctx.losses[t], ctx.task_params[name], retain_graph=True)
        for p, g in zip(ctx.task_params[name], own):
            torch.testing.assert_close(p.grad, g)
    w = torch.tensor([0.2, -1.0, 3.0])
    info.apply(w)
    torch.testing.assert_close(grads(ctx.shared_params), w @ J, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["upgrad", "mgda", "graddrop", "nash_mtl", "config"])
@pytest.mark.parametrize("shape", SHAPES[:2], ids=["linear", "layernorm"])
def test_exact_mode_equals_aggregating_the_per_task_loop(float64, name: str, shape: dict) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    net = Net(4, **shape)
    x, y = torch.randn(11, 5), torch.randn(11, 4)
    ctx = net.context(x, y)
    oracle = balancers.get(name)
    expected = oracle.aggregate(loop_jacobian(ctx))
    method = balancers.get(name, mode="exact")
    method.setup(ctx.task_names)
    zero(net)
    w = method.backward(ctx)
    assert w.shape == (4,)
    torch.testing.assert_close(grads(ctx.shared_params), expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["mean", "upgrad", "aligned_mtl", "pcgrad", "graddrop"])
@pytest.mark.parametrize("linear_heads", [False, True], ids=["deep-heads", "linear-heads-factored"])
def test_representation_mode_aggregates_gradients_of_z_then_backpropagates(float64, name: str, linear_heads: bool) -> None:  # type: ignore[no-untyped-def]
    """Linear heads take the factored path (gradients of z kept as dY_t W_t), deeper ones the dense one."""
    torch.manual_seed(2)
    net = Net(3, linear_heads=linear_heads)
    x, y = torch.randn(8, 5), torch.randn(8, 3)
    ctx = net.context(x, y)
    z = ctx.representation
    gz = torch.stack([torch.autograd.grad(ctx.losses[t], z, retain_graph=True)[0] for t in range(3)])
    direction = balancers.get(name).aggregate(gz.reshape(3, -1)).view_as(z)
    expected = torch.autograd.grad(z, ctx.shared_params, grad_outputs=direction, retain_graph=True)
    method = balancers.get(name, mode="representation")
    method.setup(ctx.task_names)
    zero(net)
    method.backward(ctx)
    for p, g in zip(ctx.shared_params, expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-9, atol=1e-11)
    for t, n in enumerate(ctx.task_names):  # heads: their own task's gradient
        own = torch.autograd.grad(ctx.losses[t], ctx.task_params[n], retain_graph=True)
        for p, g in zip(ctx.task_params[n], own):
            torch.testing.assert_close(p.grad, g)


def test_representation_mode_refuses_a_shared_parameter_that_bypasses_z(float64) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(0)
    net = Net(2, skip=True)
    ctx = net.context(torch.randn(6, 5), torch.randn(6, 2))
    method = balancers.get("mgda", mode="representation")
    method.setup(ctx.task_names)
    with pytest.raises(PolytaskError, match="representation"):
        method.backward(ctx)


def test_modes_are_declared_and_checked_when_built() -> None:
    assert balancers.modes("upgrad") == ("exact", "representation")
    assert balancers.modes("excess_mtl") == ("exact",)
    with pytest.raises(PolytaskError, match="cannot run in mode 'representation'"):
        balancers.get("excess_mtl", mode="representation")
    with pytest.raises(PolytaskError, match="unknown mode 'fast'"):
        balancers.get("upgrad", mode="fast")
    with pytest.raises(PolytaskError, match="options: .*mode"):
        balancers.get("pcgrad", beta=1)


def test_engine_does_not_mutate_the_oracle_copy() -> None:
    """A deep copy of a stateful method follows the same trajectory: state lives in the object."""
    a = balancers.get("gradvac", seed=3)
    b = copy.deepcopy(a)
    J = torch.randn(4, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for _ in range(3):
        torch.testing.assert_close(a.aggregate(J), b.aggregate(J))


@pytest.mark.parametrize("mode", ["exact", "representation"])
def test_nash_mtl_between_updates_applies_cached_weights_with_one_backward(float64, mode: str) -> None:  # type: ignore[no-untyped-def]
    """update_weights_every=2: step 2 reuses step 1's weights (same clipping rule), identical to
    aggregating the step-2 Jacobian with the cached weights."""
    torch.manual_seed(4)
    net = Net(3)
    x, y = torch.randn(10, 5), torch.randn(10, 3)
    method = balancers.get("nash_mtl", update_weights_every=2, max_norm=0.5, mode=mode)
    method.setup(["t0", "t1", "t2"])
    method.backward(net.context(x, y))
    cached = method.alpha.clone()  # type: ignore[attr-defined]
    zero(net)
    ctx = net.context(x * 1.5, y)
    J = loop_jacobian(ctx) if mode == "exact" else None
    w = method.backward(ctx)
    if J is not None:
        d = cached @ J
        scale = min(1.0, 0.5 / float(d.norm()))
        torch.testing.assert_close(grads(ctx.shared_params), scale * d, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(w.double(), (scale * cached), rtol=1e-6, atol=1e-8)
    assert method.step == 2  # type: ignore[attr-defined]
    for t, n in enumerate(ctx.task_names):
        own = torch.autograd.grad(ctx.losses[t], ctx.task_params[n], retain_graph=True)
        for p, g in zip(ctx.task_params[n], own):
            torch.testing.assert_close(p.grad, g)


def test_factored_representation_gradients_equal_the_dense_ones(float64) -> None:  # type: ignore[no-untyped-def]
    from polytask.gradients import representation_step

    torch.manual_seed(5)
    net = Net(4, linear_heads=True)
    ctx = net.context(torch.randn(12, 5), torch.randn(12, 4))
    z = ctx.representation
    info = representation_step(ctx.losses, z, [ctx.task_params[n] for n in ctx.task_names])
    assert info.factors is not None  # the factored form was used
    dense = torch.stack([torch.autograd.grad(ctx.losses[t], z, retain_graph=True)[0].reshape(-1) for t in range(4)])
    torch.testing.assert_close(info.gramian, dense @ dense.T)
    torch.testing.assert_close(info.jacobian(), dense)
    w = torch.tensor([0.5, -2.0, 1.0, 3.0])
    torch.testing.assert_close(info.direction(w), (w @ dense).view_as(z))


def test_convolutional_trunk_matches_one_backward_per_task(float64) -> None:  # type: ignore[no-untyped-def]
    """Convolution kernels take the generic path (per-task passes on the CPU), the final linear
    layer the fast one; together they equal the per-task loop."""
    torch.manual_seed(6)
    trunk = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(12, 5), nn.Tanh())
    heads = nn.ModuleList([nn.Linear(5, 1) for _ in range(3)])
    x, y = torch.randn(7, 2, 6, 6), torch.randn(7, 3)
    z = trunk(x)
    losses = torch.stack([((h(z).squeeze(1) - y[:, t]) ** 2).mean() for t, h in enumerate(heads)]) * 2.0
    names = ["a", "b", "c"]
    ctx = StepContext(losses, names, list(trunk.parameters()), {n: list(h.parameters()) for n, h in zip(names, heads)}, representation=z)
    J = loop_jacobian(ctx)
    expected = balancers.get("upgrad").aggregate(J)
    method = balancers.get("upgrad")
    method.setup(names)
    method.backward(ctx)
    torch.testing.assert_close(grads(ctx.shared_params), expected, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("shape", SHAPES, ids=["linear", "layernorm", "tied", "shared-outside-z"])
@pytest.mark.parametrize("which", ["last", "all"])
def test_per_task_gradient_norms_equal_the_loop(float64, shape: dict, which: str) -> None:  # type: ignore[no-untyped-def]
    """GradNorm's ``||dL_t/dW||`` from the factored Gramian equals one backward pass per task,
    and touches no ``.grad``."""
    torch.manual_seed(1)
    net = Net(4, **shape)
    ctx = net.context(torch.randn(11, 5), torch.randn(11, 4))
    params = list(net.l2.parameters()) if which == "last" else ctx.shared_params
    loop = StepContext(ctx.losses, ctx.task_names, params, ctx.task_params)
    expected = loop_jacobian(loop).norm(dim=1)
    torch.testing.assert_close(per_task_gradient_norms(ctx.losses, params), expected, rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in net.parameters())
