"""Per-task gradient norms at a shared layer (GradNorm's ``||dL_t/dW||``) from the heads'
factored gradients, and GradNorm's step built on them, against one backward pass per task."""

from __future__ import annotations

import pytest
import torch
from gradnorm_oracle import gradnorm_weight_gradient
from torch import nn

import polytask.balancers.gradnorm as gradnorm_module
import polytask.gradients as gradients
from polytask import balancers
from polytask.balancers import StepContext
from polytask.gradients import TaskLayout, backward_with_gradient_norms, head_factors, per_task_gradient_norms

F64 = torch.float64
ACTIVATIONS = {
    "relu": nn.ReLU(), "gelu": nn.GELU(), "tanh": nn.Tanh(), "dropout": nn.Dropout(0.3), "none": nn.Identity(),
    "relu-then-tanh": nn.Sequential(nn.ReLU(), nn.Tanh()), "relu-twice": nn.Sequential(nn.ReLU(), nn.ReLU()),
}


class Net(nn.Module):
    """``x -> Linear(5, 9) -> tanh -> Linear(9, 6) -> act -> z``, heads ``Linear(6, outputs)``."""

    def __init__(self, act: nn.Module, n_tasks: int = 3, bias: bool = True, outputs: int = 1, post: nn.Module | None = None,
                 skip: bool = False) -> None:
        super().__init__()
        self.first, self.last = nn.Linear(5, 9), nn.Linear(9, 6, bias=bias)
        self.act, self.post, self.skip = act, post, skip
        self.heads = nn.ModuleList([nn.Linear(6, outputs) for _ in range(n_tasks)])
        self.double()

    def ctx(self, x: torch.Tensor, y: torch.Tensor) -> StepContext:
        z = self.act(self.last(torch.tanh(self.first(x))))
        if self.post is not None:
            z = self.post(z)
        extra = 0.2 * self.first.bias.sum() if self.skip else 0.0  # a shared parameter reaching the losses outside z
        losses = torch.stack([((h(z).sum(1) + extra - y[:, t]) ** 2).mean() * (t + 1) for t, h in enumerate(self.heads)])
        names = [f"t{t}" for t in range(len(self.heads))]
        return StepContext(losses, names, [*self.first.parameters(), *self.last.parameters()],
                           {n: list(h.parameters()) for n, h in zip(names, self.heads)}, representation=z,
                           last_shared_params=list(self.last.parameters()))


def loop_norms(losses: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    rows = [torch.autograd.grad(losses[t], params, retain_graph=True, allow_unused=True) for t in range(losses.shape[0])]
    return torch.stack([torch.sqrt(sum((g ** 2).sum() for g in gs if g is not None)) for gs in rows])  # type: ignore[misc]


def batch(rows: int, seed: int = 0, n_tasks: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 5, generator=g, dtype=F64), torch.randn(rows, n_tasks, generator=g, dtype=F64)


def norms_of(ctx: StepContext) -> torch.Tensor:
    task_params = [ctx.task_params[n] for n in ctx.task_names]
    return per_task_gradient_norms(ctx.losses, list(ctx.last_shared_params), ctx.representation, task_params, TaskLayout(task_params))


def refuse_batched_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the per-task gradients were pushed through the activations")
    monkeypatch.setattr(gradients, "_trunk_gradients", refuse)


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("n_tasks", [3, 5], ids=["3-tasks", "5-tasks"])
def test_norms_through_elementwise_activations_need_no_batched_pass(monkeypatch: pytest.MonkeyPatch, act: str, bias: bool,
                                                                      n_tasks: int) -> None:
    """Fewer rows (7) than the layer's inputs (9), one output per head and only element-wise
    functions between the layer and z: the norms come from ``D * dZ_t`` alone and equal the loop
    (both ways of forming ``S``: 3 tasks from ``D * w_t``, 5 tasks, at least half the rows, from
    the row pairs)."""
    torch.manual_seed(0)
    net = Net(ACTIVATIONS[act], bias=bias, n_tasks=n_tasks)
    ctx = net.ctx(*batch(7, n_tasks=n_tasks))
    expected = loop_norms(ctx.losses, list(ctx.last_shared_params))
    refuse_batched_pass(monkeypatch)
    torch.testing.assert_close(norms_of(ctx), expected, rtol=1e-10, atol=1e-12)
    assert all(p.grad is None for p in net.parameters())


@pytest.mark.parametrize("case", ["layernorm", "softmax", "two-outputs", "more-rows-than-inputs"])
def test_norms_off_the_diagonal_path_still_equal_the_loop(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A normalization or softmax after the layer (a full Jacobian), heads with two outputs
    each, or more rows than inputs (the direct product is cheaper): the batched pass runs, and
    the result is the same."""
    torch.manual_seed(1)
    post = {"layernorm": nn.LayerNorm(6).double(), "softmax": nn.Softmax(dim=1)}.get(case)
    net = Net(nn.ReLU(), outputs=2 if case == "two-outputs" else 1, post=post)
    ctx = net.ctx(*batch(20 if case == "more-rows-than-inputs" else 7))
    expected = loop_norms(ctx.losses, list(ctx.last_shared_params))
    calls = []
    original = gradients._trunk_gradients
    monkeypatch.setattr(gradients, "_trunk_gradients", lambda *a, **k: calls.append(1) or original(*a, **k))
    torch.testing.assert_close(norms_of(ctx), expected, rtol=1e-10, atol=1e-12)
    assert calls == [1]


def test_norms_from_weighted_factors_are_the_weighted_norms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Factors of ``w * L`` given by the caller give ``w_t ||dL_t/dW||`` (GradNorm's ``G_t``)."""
    torch.manual_seed(2)
    net = Net(nn.ReLU())
    ctx = net.ctx(*batch(6))
    w = torch.tensor([0.5, 2.0, 0.25], dtype=F64)
    params = list(ctx.last_shared_params)
    expected = w * loop_norms(ctx.losses, params)
    task_params = [ctx.task_params[n] for n in ctx.task_names]
    factors = head_factors(w * ctx.losses, ctx.representation, task_params, own_gradients=False)  # type: ignore[arg-type]
    refuse_batched_pass(monkeypatch)
    got = per_task_gradient_norms(w * ctx.losses, params, ctx.representation, factors=factors)
    torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-12)


def one_pass(ctx: StepContext) -> torch.Tensor | None:
    task_params = [ctx.task_params[n] for n in ctx.task_names]
    return backward_with_gradient_norms(ctx.losses, ctx.representation, list(ctx.last_shared_params), TaskLayout(task_params))  # type: ignore[arg-type]


@pytest.mark.parametrize("act", list(ACTIVATIONS))
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("n_tasks", [3, 5], ids=["3-tasks", "5-tasks"])
def test_one_backward_pass_gives_the_summed_gradient_and_every_tasks_norm(monkeypatch: pytest.MonkeyPatch, act: str,
                                                                          bias: bool, n_tasks: int) -> None:
    """``backward_with_gradient_norms``: one pass of ``sum_t L_t`` leaves in every parameter's
    ``.grad`` what ``sum_t L_t`` gives it, and the norms it returns, from the heads' output
    gradients recorded during that pass, equal one backward pass per task."""
    torch.manual_seed(5)
    net = Net(ACTIVATIONS[act], bias=bias, n_tasks=n_tasks)
    ctx = net.ctx(*batch(7, n_tasks=n_tasks))
    params = list(net.parameters())
    expected_norms = loop_norms(ctx.losses, list(ctx.last_shared_params))
    expected = torch.autograd.grad(ctx.losses.sum(), params, retain_graph=True)
    refuse_batched_pass(monkeypatch)
    got = one_pass(ctx)
    assert got is not None
    torch.testing.assert_close(got, expected_norms, rtol=1e-10, atol=1e-12)
    for p, g in zip(params, expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("case", ["layernorm", "two-outputs", "more-rows-than-inputs"])
def test_one_pass_norms_refuse_other_shapes_and_run_nothing(case: str) -> None:
    """A full Jacobian after the layer, heads with two outputs each, or more rows than inputs:
    None, no ``.grad`` written and the graph still whole (the caller takes another path)."""
    torch.manual_seed(6)
    net = Net(nn.ReLU(), outputs=2 if case == "two-outputs" else 1, post=nn.LayerNorm(6).double() if case == "layernorm" else None)
    ctx = net.ctx(*batch(20 if case == "more-rows-than-inputs" else 7))
    assert one_pass(ctx) is None
    assert all(p.grad is None for p in net.parameters())
    ctx.losses.sum().backward()  # the graph was not freed


def gradnorm_after_a_first_step(net: Net, rows: int) -> tuple[balancers.Balancer, StepContext]:
    b = balancers.get("gradnorm", alpha=1.2)
    b.setup([f"t{t}" for t in range(3)])
    b.backward(net.ctx(*batch(rows, seed=3)))  # records L(0)
    with torch.no_grad():
        b.loss_weights.copy_(torch.tensor([0.6, 1.5, 0.9]))  # type: ignore[union-attr]
    b.loss_weights.grad = None  # type: ignore[union-attr]
    net.zero_grad(set_to_none=True)
    return b, net.ctx(*batch(rows, seed=4))


@pytest.mark.parametrize("shape", ["factored", "two-outputs", "more-rows-than-inputs", "shared-outside-z"])
def test_gradnorm_step_gives_the_network_the_weighted_gradient_and_the_weights_their_gradient(
        monkeypatch: pytest.MonkeyPatch, shape: str) -> None:
    """Whichever path the step takes (one backward pass recording the heads' output gradients;
    heads with two outputs: the heads differentiated once, the norms through a batched pass from
    their factors and a pass from z; or the generic norms and a full backward pass), the network's ``.grad`` is
    ``grad sum_t w_t L_t`` and the weights' gradient is autograd of ``L_grad``."""
    torch.manual_seed(3)
    net = Net(nn.ReLU(), skip=shape == "shared-outside-z", outputs=2 if shape == "two-outputs" else 1)
    b, ctx = gradnorm_after_a_first_step(net, 20 if shape == "more-rows-than-inputs" else 6)
    expected_w = gradnorm_weight_gradient(b, ctx, alpha=1.2)
    w = b.normalized_weights().to(F64)  # type: ignore[attr-defined]
    params = list(net.parameters())
    expected = torch.autograd.grad((w * ctx.losses).sum(), params, retain_graph=True)
    if shape == "factored":  # one backward pass: neither the batched pass nor a separate pass through the heads
        refuse_batched_pass(monkeypatch)
        monkeypatch.setattr(gradnorm_module, "head_factors", lambda *a, **k: pytest.fail("the heads were differentiated apart"))
    b.backward(ctx)
    torch.testing.assert_close(b.loss_weights.grad.to(F64), expected_w, rtol=1e-6, atol=1e-8)  # type: ignore[union-attr]  # w is float32
    for p, g in zip(params, expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
