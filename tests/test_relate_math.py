"""Relatedness math against independent oracles: scipy's Spearman, hand-derived sensitivities
of a linear head, the TAG look-ahead by hand for a linear model with SGD, the optimizers'
published update rules, and callbacks that leave training unchanged."""

from __future__ import annotations

from types import SimpleNamespace

import copy

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from polytask.data.tensors import TaskTensors
from polytask.models.hps import HardSharing
from polytask.relate.affinity import LookaheadAffinity
from polytask.relate.agreement import GradientAgreement, gradient_cosines
from polytask.relate.lookahead import lookahead_parameters, lookahead_parameters_batched
from polytask.relate.sharing import hidden_unit_sharing, spearman_matrix, unit_sensitivity
from polytask.tasks import Task
from polytask.training.config import TrainConfig
from polytask.training.trainer import Trainer


def test_spearman_matrix_against_scipy_on_a_hand_example() -> None:
    s = np.array([
        [0.9, 0.1, 0.5, 0.3, 0.7],
        [0.8, 0.2, 0.6, 0.1, 0.9],  # nearly the same ranking as row 0
        [0.1, 0.9, 0.5, 0.7, 0.3],  # reversed ranking of row 0
        [1.0, 1.0, 2.0, 3.0, 0.5],  # ties: average ranks
    ])
    r = spearman_matrix(s)
    assert r[0, 2] == pytest.approx(-1.0)
    # ranks of row 0: 5,1,3,2,4; row 1: 4,2,3,1,5 -> d^2 = 1+1+0+1+1 = 4 -> 1 - 6*4/(5*24) = 0.8
    assert r[0, 1] == pytest.approx(0.8)
    for a in range(4):
        for b in range(4):
            assert r[a, b] == pytest.approx(stats.spearmanr(s[a], s[b]).statistic)
    assert np.isnan(spearman_matrix(np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]))[0, 1])


def head_layer(net: HardSharing, name: str) -> nn.Module:
    """The (only) linear layer of a task head without hidden layers, as its weight and bias
    (views of the fused head bank, which writes through them)."""
    weight, bias = net.task_parameters(name)
    return SimpleNamespace(weight=weight, bias=bias)  # type: ignore[return-value]


def linear_head_network(seed: int = 0) -> HardSharing:
    torch.manual_seed(seed)
    return HardSharing(4, {"a": 1, "b": 1, "c": 3}, trunk=(6,), activation="tanh")


def test_sensitivities_of_linear_heads_match_the_hand_formula() -> None:
    net = linear_head_network()
    x = torch.randn(50, 4)
    with torch.no_grad():
        z = net.encode(x)
    spread = (z - z.mean(dim=0)).abs().mean(dim=0)  # mean_rows |z_k - mean z_k|
    grad, active = unit_sensitivity(net, x, "gradient", batch_size=17)
    ablation, _ = unit_sensitivity(net, x, "ablation", batch_size=17)
    assert active.all()
    for t, name in enumerate(["a", "b", "c"]):
        w = head_layer(net, name).weight.detach().abs()  # (d_t, K): y = W z + b, so dy_c/dz_k = W[c, k]
        np.testing.assert_allclose(grad[t], w.sum(dim=0).numpy(), rtol=1e-5)
        np.testing.assert_allclose(ablation[t], (w.sum(dim=0) * spread).numpy(), rtol=1e-4)


def test_sharing_ranks_units_by_the_head_weights_and_skips_dead_units() -> None:
    net = HardSharing(3, {"a": 1, "b": 1, "c": 1}, trunk=(8,), activation="relu")
    with torch.no_grad():
        first = net.trunk[0]
        first.weight.copy_(torch.randn(8, 3))
        first.weight[7] = 0.0
        first.bias[7] = -1.0  # unit 7 is dead: relu(-1) = 0 for every row
        base = torch.arange(1.0, 9.0)
        head_layer(net, "a").weight.copy_(base[None, :])
        head_layer(net, "b").weight.copy_(2 * base[None, :] + 0.1)  # same ranking of units as a
        head_layer(net, "c").weight.copy_(-base.flip(0)[None, :])  # |.| ranks units in reverse
    matrix, used = hidden_unit_sharing(net, torch.randn(40, 3), "gradient")
    assert used.shape == (3, 7)
    assert matrix.frame.loc["a", "b"] == pytest.approx(1.0)
    assert matrix.frame.loc["a", "c"] == pytest.approx(-1.0)


def make_linear_problem(n: int = 12, seed: int = 0) -> tuple[HardSharing, list[Task], TaskTensors]:
    torch.manual_seed(seed)
    net = HardSharing(3, {"a": 1, "b": 1, "c": 1}, custom_trunk=nn.Linear(3, 2, bias=False))
    x = torch.randn(n, 3)
    targets = {"a": x[:, :1] * 2.0, "b": -x[:, :1] + x[:, 1:2], "c": torch.randn(n, 1)}
    masks = {k: torch.ones(n, 1, dtype=torch.bool) for k in targets}
    tasks = [Task(k) for k in targets]
    return net, tasks, TaskTensors(x, targets, masks)


def test_tag_lookahead_matches_a_hand_computation_for_a_linear_model_with_sgd() -> None:
    net, tasks, data = make_linear_problem()
    initial = copy.deepcopy(net)
    lr = 0.05
    config = TrainConfig(epochs=1, batch_size=len(data), optimizer="sgd", momentum=0.0, lr=lr, early_stopping="none")
    callback = LookaheadAffinity(every=1)
    Trainer(net, tasks, config=config, callbacks=[callback]).fit(data)
    z = callback.records.values[0]  # the first (and only) step, at the initial parameters

    # Hand computation in float64: y_t = v_t^T W x + b_t, L_t = mean_i (y_ti - target_ti)^2.
    x = data.x.double().numpy()
    w = initial.trunk.weight.detach().double().numpy()
    heads = {t.name: (head_layer(initial, t.name).weight.detach().double().numpy()[0], float(head_layer(initial, t.name).bias.detach())) for t in tasks}
    y = {k: v.double().numpy()[:, 0] for k, v in data.targets.items()}

    def loss(name: str, weight: np.ndarray) -> float:
        v, b = heads[name]
        return float(np.mean((x @ weight.T @ v + b - y[name]) ** 2))

    def grad(name: str) -> np.ndarray:  # dL/dW = (2/n) sum_i r_i v x_i^T
        v, b = heads[name]
        r = x @ w.T @ v + b - y[name]
        return 2.0 / len(x) * np.outer(v, r @ x)

    names = [t.name for t in tasks]
    for i, src in enumerate(names):
        stepped = w - lr * grad(src)
        for j, dst in enumerate(names):
            assert z[i, j] == pytest.approx(1.0 - loss(dst, stepped) / loss(dst, w), rel=1e-4, abs=1e-7)
    assert z[0, 0] > 0  # a gradient step on a task lowers its own loss


def test_lookahead_follows_sgd_momentum_and_adam_state() -> None:
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(5))
    q = nn.Parameter(torch.randn(3))  # another parameter the optimizer updates, not looked at
    g_train = [torch.randn(5) for _ in range(3)]
    g_new = torch.randn(5)

    sgd = torch.optim.SGD([p, q], lr=0.1, momentum=0.9, weight_decay=0.01)
    buf = None
    for g in g_train:  # real training steps build the momentum buffer
        p.grad, q.grad = g.clone(), torch.ones(3)
        d = g + 0.01 * p.detach()
        buf = d.clone() if buf is None else 0.9 * buf + d
        sgd.step()
    before = p.detach().clone()
    (ahead,) = lookahead_parameters(sgd, [p], [g_new])
    expected = before - 0.1 * (0.9 * buf + g_new + 0.01 * before)  # PyTorch's SGD rule
    torch.testing.assert_close(ahead, expected)
    torch.testing.assert_close(p.detach(), before)  # real parameter untouched
    torch.testing.assert_close(sgd.state[p]["momentum_buffer"], buf)  # real state untouched

    p2 = nn.Parameter(torch.randn(5))
    adam = torch.optim.Adam([p2], lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    m = torch.zeros(5)
    v = torch.zeros(5)
    for g in g_train:
        p2.grad = g.clone()
        m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
        adam.step()
    before = p2.detach().clone()
    (ahead,) = lookahead_parameters(adam, [p2], [g_new])
    m, v = 0.9 * m + 0.1 * g_new, 0.999 * v + 0.001 * g_new**2
    step = len(g_train) + 1
    expected = before - 0.01 * (m / (1 - 0.9**step)) / ((v / (1 - 0.999**step)).sqrt() + 1e-8)
    torch.testing.assert_close(ahead, expected)
    assert int(adam.state[p2]["step"]) == len(g_train)


def test_gradient_cosines_against_a_direct_computation() -> None:
    j = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [-2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    cos = gradient_cosines(j)
    assert cos[0, 1] == pytest.approx(1 / np.sqrt(2))
    assert cos[0, 2] == pytest.approx(-1.0)
    assert np.isnan(cos[3, 0]) and np.isnan(cos[3, 3])


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_callbacks_do_not_change_training(optimizer: str) -> None:
    states = []
    for callbacks in ([], [GradientAgreement(every=1), LookaheadAffinity(every=2)]):
        net, tasks, data = make_linear_problem(n=40, seed=3)
        config = TrainConfig(epochs=3, batch_size=8, optimizer=optimizer, lr=0.05, early_stopping="none", seed=1)
        Trainer(net, tasks, config=config, callbacks=callbacks).fit(data)
        states.append(net.state_dict())
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k], rtol=0, atol=0)
    assert len(callbacks[0].records) == 15 and len(callbacks[1].records) == 8


def test_every_zero_records_nothing() -> None:
    net, tasks, data = make_linear_problem()
    callbacks = [GradientAgreement(every=0), LookaheadAffinity(every=0)]
    Trainer(net, tasks, config=TrainConfig(epochs=2, batch_size=4, early_stopping="none"), callbacks=callbacks).fit(data)
    assert all(len(cb.records) == 0 for cb in callbacks)


@pytest.mark.parametrize("make", [
    lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
    lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    lambda ps: torch.optim.AdamW(ps, lr=0.01),
])
def test_batched_lookahead_equals_one_step_per_task(make) -> None:  # type: ignore[no-untyped-def]
    torch.manual_seed(1)
    params = [nn.Parameter(torch.randn(3, 2)), nn.Parameter(torch.randn(4))]
    opt = make(params)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    grads = [torch.randn(5, 3, 2), torch.randn(5, 4)]  # five tasks
    batched = lookahead_parameters_batched(opt, params, grads)
    for i in range(5):
        single = lookahead_parameters(opt, params, [g[i] for g in grads])
        for b, s in zip(batched, single):
            torch.testing.assert_close(b[i], s)


def test_tag_without_vmap_falls_back_to_one_forward_per_task(monkeypatch: pytest.MonkeyPatch) -> None:
    results = []
    for broken in (False, True):
        if broken:
            def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
                raise RuntimeError("vmap: unsupported operation")

            monkeypatch.setattr(torch.func, "vmap", refuse)
        net, tasks, data = make_linear_problem(n=20, seed=5)
        callback = LookaheadAffinity(every=1)
        config = TrainConfig(epochs=1, batch_size=10, optimizer="adam", lr=0.05, early_stopping="none")
        Trainer(net, tasks, config=config, callbacks=[callback]).fit(data)
        results.append(np.stack(callback.records.values))
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-7)
