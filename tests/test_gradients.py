"""The per-task Jacobian against one backward pass per task."""

from __future__ import annotations

import torch

from polytask.gradients import accumulate_flat_gradient, per_task_gradients


def test_per_task_gradients_match_one_backward_per_task() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    unused = torch.nn.Parameter(torch.ones(2))
    out = net(torch.randn(8, 4))
    losses = torch.stack([out[:, 0].pow(2).mean(), out[:, 1].abs().mean(), (out[:, 2] - 1).pow(2).mean()])
    params = list(net.parameters()) + [unused]
    jac = per_task_gradients(losses, params)
    for t in range(3):
        grads = torch.autograd.grad(losses[t], params, retain_graph=True, allow_unused=True)
        row = torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])
        torch.testing.assert_close(jac[t], row)
    assert jac[:, -2:].abs().sum() == 0  # a parameter no loss reaches gets zeros


def test_accumulate_flat_gradient_adds_into_grad() -> None:
    a, b = torch.nn.Parameter(torch.zeros(2, 2)), torch.nn.Parameter(torch.zeros(3))
    b.grad = torch.ones(3)
    accumulate_flat_gradient([a, b], torch.arange(7.0))
    torch.testing.assert_close(a.grad, torch.tensor([[0.0, 1.0], [2.0, 3.0]]))
    torch.testing.assert_close(b.grad, torch.tensor([5.0, 6.0, 7.0]))
