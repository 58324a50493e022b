"""LibMTL 1.1.5 (PyPI ``libmtl``) as a second independent oracle, beside torchjd.

Every method LibMTL ships is run through LibMTL's own ``backward`` on the same small float64
network and batch as ours, and the parameters' gradients are compared. Where the definitions
differ by design, the test says which side follows the paper and reproduces the difference
exactly (feeding LibMTL's convention into ours, or ours into LibMTL's), so the remaining code is
still checked. LibMTL 1.1.5 has no Nash-MTL, Aligned-MTL, MoCo, DB-MTL, FAMO, STCH, ExcessMTL,
UPGrad, DualProj, ConFIG, FairGrad or SDMGrad (its main branch has some; see
docs/GRADIENT_ENGINE.md): torchjd and the papers' properties cover those.

LibMTL is installed without its dependencies (``pip install --no-deps libmtl``, as in the README's
test command). Its package ``__init__`` imports its models, which need torchvision; the weighting
modules need only torch, numpy and scipy, so they are imported without running that ``__init__``.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import random
import sys
import types
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from polytask import balancers
from polytask.balancers import StepContext

F64 = torch.float64


def libmtl(module: str) -> types.ModuleType:
    """``LibMTL.weighting.<module>``, imported without ``LibMTL/__init__.py`` (torchvision)."""
    if "LibMTL" not in sys.modules:
        spec = importlib.util.find_spec("LibMTL")
        if spec is None or spec.submodule_search_locations is None:
            pytest.skip("LibMTL is not installed: pip install --no-deps libmtl (the README's test command does)")
        package = types.ModuleType("LibMTL")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["LibMTL"] = package
    return importlib.import_module(f"LibMTL.weighting.{module}")


@pytest.fixture(autouse=True)
def float64():  # type: ignore[no-untyped-def]
    """LibMTL allocates its gradient matrices with the default dtype: compare in float64."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    yield
    torch.set_default_dtype(old)


class Toy(nn.Module):
    """A shared trunk and one linear head per task; ``rep_grad`` routes the heads through
    per-task copies of ``z`` as LibMTL's architectures do for representation gradients."""

    def __init__(self, n_tasks: int = 3, seed: int = 0, rows: int = 16, positive: bool = False) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 6), nn.Sigmoid() if positive else nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(6, 1) for _ in range(n_tasks)])
        g = torch.Generator().manual_seed(seed + 100)
        self.x = torch.randn(rows, 4, generator=g)
        self.y = torch.randn(rows, n_tasks, generator=g) * torch.linspace(0.5, 3.0, n_tasks)
        self.names = [f"t{t}" for t in range(n_tasks)]

    def losses(self, z: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        zs = z if isinstance(z, dict) else {n: z for n in self.names}
        return torch.stack([((h(zs[n]).squeeze(1) - self.y[:, t]) ** 2).mean() for t, (n, h) in enumerate(zip(self.names, self.heads))])

    def ctx(self, epoch: int = 0) -> StepContext:
        z = self.trunk(self.x)
        return StepContext(self.losses(z), self.names, list(self.trunk.parameters()),
                           {n: list(h.parameters()) for n, h in zip(self.names, self.heads)}, representation=z,
                           last_shared_params=list(self.trunk.parameters()), epoch=epoch)

    def grads(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(shared, heads) gradients, flattened."""
        flat = lambda ps: torch.cat([p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel()) for p in ps])  # noqa: E731
        return flat(self.trunk.parameters()), flat(self.heads.parameters())

    def zero(self) -> None:
        for p in self.parameters():
            p.grad = None


def host(module: str, toy: Toy, rep_grad: bool = False, epoch: int = 0) -> Any:
    """A LibMTL weighting bound to ``toy`` the way LibMTL's trainer binds it to its model."""
    cls = getattr(libmtl(module), module)

    class Host(cls):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.task_num, self.task_name, self.device, self.rep_grad, self.epoch = len(toy.names), toy.names, torch.device("cpu"), rep_grad, epoch
            self.net = toy

        def get_share_params(self):  # type: ignore[no-untyped-def]
            return self.net.trunk.parameters()

        def zero_grad_share_params(self) -> None:
            self.net.trunk.zero_grad(set_to_none=False)

        def losses(self) -> torch.Tensor:
            """A fresh forward pass (representation copies per task when ``rep_grad``)."""
            z = self.net.trunk(self.net.x)
            if not self.rep_grad:
                return self.net.losses(z)
            self.rep = z
            self.rep_tasks = {n: z.detach().clone().requires_grad_(True) for n in self.task_name}
            return self.net.losses(self.rep_tasks)

    h = Host()
    h.init_param()
    return h


def ours(name: str, toy: Toy, **options: Any) -> tuple[torch.Tensor, torch.Tensor, balancers.Balancer]:
    method = balancers.get(name, **options)
    method.setup(toy.names)
    toy.zero()
    method.backward(toy.ctx())
    shared, heads = toy.grads()
    return shared, heads, method


def theirs(h: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, Any]:
    h.net.zero()
    out = h.backward(h.losses(), **kwargs)
    shared, heads = h.net.grads()
    return shared, heads, out


def close(a: torch.Tensor, b: torch.Tensor, tol: float = 1e-9) -> None:
    assert float((a - b).abs().max()) <= tol * max(1.0, float(b.abs().max())), f"max diff {float((a - b).abs().max()):.3g}"


def test_libmtl_weighting_imports_without_its_heavy_dependencies() -> None:
    assert hasattr(libmtl("EW"), "EW") and hasattr(libmtl("MGDA"), "MGDA")


# ------------------------------------------------------------------------------------------
# same definition


def test_ew_equals_libmtl() -> None:
    a = ours("ew", Toy())[:2]
    b = theirs(host("EW", Toy()))[:2]
    close(a[0], b[0]), close(a[1], b[1])


def test_uw_equals_libmtl_with_its_initial_log_variance() -> None:
    """LibMTL starts the log-variances at -0.5 (our option ``init_log_variance``); same objective."""
    s, hd, method = ours("uw", Toy(), init_log_variance=-0.5)
    h = host("UW", Toy())
    s2, hd2, _ = theirs(h)
    close(s, s2), close(hd, hd2)
    close(method.log_variance.grad, h.loss_scale.grad)  # type: ignore[union-attr]


def test_gls_gradient_equals_libmtl() -> None:
    """Same objective ``(prod L)^(1/T)``. (LibMTL's returned weights, ``L_t / (T prod L)``, are not
    the coefficients of ``grad L_t``; ours are ``GLS / (T L_t)``. Only the gradient is compared.)"""
    s, hd, _ = ours("gls", Toy())
    s2, hd2, _ = theirs(host("GLS", Toy()))
    close(s, s2), close(hd, hd2)


def test_dwa_weights_equal_libmtl_over_epochs() -> None:
    """LibMTL's trainer keeps the epoch means of the training losses in ``train_loss_buffer``;
    DWA reads the last two. Ours accumulates the same means."""
    gen = torch.Generator().manual_seed(1)
    epochs = [[torch.rand(3, generator=gen) + 0.2 for _ in range(2)] for _ in range(4)]
    method = balancers.get("dwa", temperature=2.0)
    method.setup(["a", "b", "c"])
    h = host("DWA", Toy())
    h.train_loss_buffer = np.zeros((3, len(epochs)))
    for e, batches in enumerate(epochs):
        h.epoch = e
        for L in batches:
            leaf = L.clone().requires_grad_(True)
            w = method.backward(StepContext(leaf, ["a", "b", "c"], [], {"a": [], "b": [], "c": []}, epoch=e))
            theirs_w = h.backward(L.clone().requires_grad_(True), T=2.0)
            np.testing.assert_allclose(w.numpy(), theirs_w, rtol=1e-12)
        h.train_loss_buffer[:, e] = torch.stack(batches).mean(0).numpy()


@pytest.mark.parametrize(("ours_dist", "their_dist"), [("normal", "Normal"), ("uniform", "Uniform")])
def test_rlw_equals_libmtl_given_the_same_draws(ours_dist: str, their_dist: str) -> None:
    """LibMTL draws from torch's global generator, we from our own seeded one: same seed, same
    weights (softmax of the draw), same gradient."""
    for seed in range(3):
        toy = Toy()
        s, hd, _ = ours("rlw", toy, seed=seed, distribution=ours_dist)
        h = host("RLW", Toy())  # builds a network: seed the global generator after
        torch.manual_seed(seed)
        s2, hd2, _ = theirs(h, dist=their_dist)
        close(s, s2), close(hd, hd2)


def test_imtl_is_imtl_l_plus_imtl_g() -> None:
    """LibMTL's IMTL is the paper's hybrid: IMTL-L's scaled losses ``e^s L - s`` and IMTL-G's
    closed-form weights (``alpha = g_1 U^T (D U^T)^-1``, Liu et al. 2021) on their gradients.
    polytask ships the halves separately (``imtl_l``, ``imtl_g``, the pseudo-inverse form of
    Quinton and Rey 2024). At the start (``s = 0``) the shared update is IMTL-G's, and LibMTL's
    scale gradient is IMTL-L's ``e^s L - 1``."""
    s, hd, method = ours("imtl_g", Toy())
    h = host("IMTL", Toy())
    s2, hd2, alpha = theirs(h)
    close(s, s2, 1e-8), close(hd, hd2)
    fresh = Toy()
    losses = fresh.ctx().losses
    G = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(losses[t], list(fresh.trunk.parameters()), retain_graph=True)])
                     for t in range(3)])
    np.testing.assert_allclose(balancers.get("imtl_g").weights(G @ G.T).numpy(), alpha, rtol=1e-7)
    scales = balancers.get("imtl_l")
    scales.setup(Toy().names)
    scales.backward(Toy().ctx())
    close(scales.log_scale.grad, h.loss_scale.grad)  # type: ignore[union-attr]


def seeded_shuffle(seed: int) -> types.SimpleNamespace:
    """A ``random`` stand-in whose ``shuffle`` applies ``torch.randperm`` from a seeded
    generator: LibMTL's orders then equal ours (our stream draws one ``randperm`` per task)."""
    gen = torch.Generator().manual_seed(seed)

    def shuffle(items: list[int]) -> None:
        items[:] = [items[k] for k in torch.randperm(len(items), generator=gen).tolist()]

    return types.SimpleNamespace(shuffle=shuffle, sample=random.sample)


def test_pcgrad_equals_libmtl_given_the_same_orders(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both visit the tasks in a random order (LibMTL's order includes the task itself, a no-op
    unless ``g_i^PC . g_i < 0``; the paper visits the others only). Same orders, same update."""
    for seed in range(4):
        toy = Toy(4, seed=seed)
        s, hd, method = ours("pcgrad", toy, seed=seed)
        monkeypatch.setattr(libmtl("PCGrad"), "random", seeded_shuffle(seed))
        s2, hd2, _ = theirs(host("PCGrad", Toy(4, seed=seed)))
        close(s, s2, 1e-8), close(hd, hd2)


# ------------------------------------------------------------------------------------------
# differences by design, reproduced


def test_mgda_libmtl_clamps_a_vertex_solution_and_otherwise_approaches_ours() -> None:
    """Sener and Koltun's min-norm point (ours, exact QP). LibMTL's solver (from the authors'
    code) returns weights 0.999 / 0.001 where the exact answer is the vertex 1 / 0 (its pair
    solver clamps gamma), and its projected-gradient iterations stop at a change below 1e-5: its
    norm can only be larger than ours."""
    solver = host("MGDA", Toy()).__class__._find_min_norm_element
    g = torch.tensor([[1.0, 0.2, 0.0], [3.0, 1.0, 0.5]])  # g_1 . g_2 >= ||g_1||^2: the vertex g_1
    w_theirs = solver(None, g)
    torch.testing.assert_close(w_theirs, torch.tensor([0.999, 0.001]), rtol=0, atol=1e-15)
    torch.testing.assert_close(balancers.get("mgda").weights(g @ g.T), torch.tensor([1.0, 0.0]), atol=1e-8, rtol=0)
    # reproduction: the clamped point is 0.1 % of the way from the exact vertex to g_2
    torch.testing.assert_close(w_theirs @ g, 0.999 * g[0] + 0.001 * g[1])
    for seed in range(5):  # on the network, T = 3: LibMTL's update is never shorter than the min-norm one
        s, _, _ = ours("mgda", Toy(seed=seed))
        s2, _, _ = theirs(host("MGDA", Toy(seed=seed)), mgda_gn="none")
        assert float(s.norm()) <= float(s2.norm()) + 1e-9
        close(s, s2, 1e-3)


@pytest.mark.parametrize("rescale", [0, 1])
def test_cagrad_equals_libmtl_and_its_rescale_divides_by_one_plus_c2(rescale: int) -> None:
    """The paper's Algorithm 1 is ``d = g_0 + sqrt(phi) g_w / ||g_w||`` (ours, the authors'
    ``rescale=0``); LibMTL's default ``rescale=1`` divides it by ``1 + c^2``. LibMTL solves the
    dual with SLSQP at scipy's default tolerance (about 1e-4 on the update), and only for three
    tasks (its objective reshapes to 1 x 3)."""
    s, hd, _ = ours("cagrad", Toy(3), c=0.4)
    s2, hd2, _ = theirs(host("CAGrad", Toy(3)), calpha=0.4, rescale=rescale)
    close(s / (1 + 0.4**2) if rescale == 1 else s, s2, 1e-3), close(hd, hd2)


def test_gradvac_equals_libmtl_given_its_targets_and_its_ema_rule_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wang et al. (2021), Algorithm 1 updates the target ``phi_hat_ij`` by the EMA at every
    visit (ours, and torchjd's); LibMTL updates it only when the pair was corrected
    (``phi_ij < phi_hat_ij``). Same orders and same targets give the same update at every step;
    after a step, ours moved every target, LibMTL's only the corrected ones."""
    toy, their_toy = Toy(4, seed=2), Toy(4, seed=2)
    method = balancers.get("gradvac", beta=0.5, seed=5)
    method.setup(toy.names)
    h = host("GradVac", their_toy)
    monkeypatch.setattr(libmtl("GradVac"), "random", seeded_shuffle(5))
    for step in range(3):
        if step > 0:  # give ours LibMTL's targets, so this step checks everything else
            method.phi_hat = h.rho_T.clone()  # type: ignore[attr-defined]
        before = None if step == 0 else method.phi_hat.clone()  # type: ignore[attr-defined]
        toy.zero()
        method.backward(toy.ctx())
        s2, hd2, _ = theirs(h, beta=0.5)
        s, hd = toy.grads()
        close(s, s2, 1e-7), close(hd, hd2)
        if before is not None:
            moved_ours = (method.phi_hat != before).sum()  # type: ignore[attr-defined]
            moved_theirs = (h.rho_T != before).sum()
            assert int(moved_ours) == 4 * 3 and int(moved_theirs) < int(moved_ours)
        with torch.no_grad():  # move the network so the next step sees new gradients
            for net in (toy, their_toy):
                for p in net.parameters():
                    p.add_(0.01 * torch.ones_like(p))


def test_graddrop_equals_libmtl_on_one_example_and_differs_by_its_batch_reduction() -> None:
    """Chen et al. (2020) define the purity on gradients at activations; for a batch LibMTL uses
    the paper's reduction (sum over the batch of ``grad * sign(input)``, one mask per feature of
    ``z``, Section 3.2), while ours (and torchjd's) applies Algorithm 1 to every coordinate of J,
    i.e. each example gets its own mask. With one example and positive activations the two are
    the same rule: given the same uniform draws, the same update."""
    toy, their_toy = Toy(3, seed=4, rows=1, positive=True), Toy(3, seed=4, rows=1, positive=True)
    method = balancers.get("graddrop", seed=0, mode="representation")
    method.setup(toy.names)
    method._stream.generator.manual_seed(9)  # type: ignore[attr-defined]
    toy.zero()
    method.backward(toy.ctx())
    torch.manual_seed(9)
    s2, hd2, _ = theirs(host("GradDrop", their_toy, rep_grad=True), leak=0.0)
    s, hd = toy.grads()
    # LibMTL adds 1e-7 to the purity's denominator
    close(s, s2, 1e-6), close(hd, hd2)
    big, big_theirs = Toy(3, seed=4, rows=16, positive=True), Toy(3, seed=4, rows=16, positive=True)
    method = balancers.get("graddrop", seed=0, mode="representation")
    method.setup(big.names)
    big.zero()
    method.backward(big.ctx())
    torch.manual_seed(9)
    s3, _, _ = theirs(host("GradDrop", big_theirs, rep_grad=True), leak=0.0)
    assert float((big.grads()[0] - s3).abs().max()) > 1e-6  # one mask per feature vs per coordinate


def test_gradnorm_softmax_weights_reproduce_ours_through_the_softmax_jacobian() -> None:
    """Chen et al. (2018) update the weights ``w`` by gradient descent on ``L_grad`` and
    renormalise them to sum T (ours); LibMTL parameterises ``w = T softmax(s)`` and starts after
    an epoch of equal weights, with ``L(0)`` the first epoch's mean loss and ``W`` all shared
    parameters. Given the same ``w``, ``L(0)`` and ``W``: the same shared update, and LibMTL's
    gradient in ``s`` is ours in ``w`` through the softmax, ``T (diag(z) - z z^T) dL/dw``.
    (LibMTL's heads get their own unweighted loss gradients, ours ``w_t`` times them.)"""
    toy, their_toy = Toy(3, seed=6), Toy(3, seed=6)
    w = torch.tensor([0.5, 1.7, 0.8])
    initial = toy.ctx().losses.detach() * torch.tensor([1.2, 0.9, 1.5])
    method = balancers.get("gradnorm", alpha=1.5)
    method.setup(toy.names)
    with torch.no_grad():
        method.loss_weights.copy_(w)  # type: ignore[union-attr]
    method.initial_losses = initial.clone()  # type: ignore[attr-defined]
    toy.zero()
    method.backward(toy.ctx())
    h = host("GradNorm", their_toy, epoch=1)
    with torch.no_grad():
        h.loss_scale.copy_(torch.log(w / 3))
    h.train_loss_buffer = initial.numpy()[:, None]
    s2, _, weights = theirs(h, alpha=1.5)
    np.testing.assert_allclose(weights, w.numpy(), rtol=1e-12)
    close(toy.grads()[0], s2)
    z = w / 3
    through_softmax = 3 * (torch.diag(z) - torch.outer(z, z)) @ method.loss_weights.grad  # type: ignore[union-attr]
    close(h.loss_scale.grad, through_softmax)
    assert math.isclose(float(h.loss_scale.grad.sum()), 0.0, abs_tol=1e-12)  # softmax: no change of sum(w)
