"""Defining properties of the aggregation methods, on Jacobians drawn by hypothesis."""

from __future__ import annotations

import cvxpy as cp
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from polytask import balancers

FAST = settings(max_examples=25, deadline=None, derandomize=True)


@st.composite
def jacobians(draw, min_tasks: int = 2, max_tasks: int = 6, full_rank: bool = False):  # type: ignore[no-untyped-def]
    """(T, P) float64 matrices: Gaussian rows, optionally pushed into conflict and scaled unevenly."""
    n_tasks = draw(st.integers(min_tasks, max_tasks))
    n_params = draw(st.integers(n_tasks + 1 if full_rank else 1, 14))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    J = torch.randn(n_tasks, n_params, generator=g, dtype=torch.float64)
    if draw(st.booleans()):  # conflicting: half the tasks share a direction, the others oppose it
        base = torch.randn(n_params, generator=g, dtype=torch.float64)
        J[: n_tasks // 2] += 2 * base
        J[n_tasks // 2 :] -= 2 * base
    scales = torch.tensor(draw(st.lists(st.floats(0.1, 10.0), min_size=n_tasks, max_size=n_tasks)), dtype=torch.float64)
    return J * scales[:, None]


@FAST
@given(jacobians(max_tasks=7))
def test_mgda_is_the_min_norm_point_of_the_convex_hull(J: torch.Tensor) -> None:
    w = balancers.get("mgda").weights(J @ J.T)
    assert float(w.min()) >= -1e-9 and abs(float(w.sum()) - 1) < 1e-9
    d = w @ J
    # independent solve of min ||J^T w||^2 over the simplex
    v = cp.Variable(J.shape[0])
    prob = cp.Problem(cp.Minimize(cp.sum_squares(J.numpy().T @ v)), [v >= 0, cp.sum(v) == 1])
    prob.solve(cp.CLARABEL)
    scale = float((J * J).sum(dim=1).max())
    assert float(d @ d) <= prob.value + 1e-7 * scale
    # KKT: every gradient has at least ||d||^2 along d (first-order optimality over the simplex)
    assert float((J @ d).min()) >= float(d @ d) - 1e-6 * scale


@FAST
@given(jacobians(min_tasks=2, max_tasks=2))
def test_pcgrad_with_two_tasks_leaves_no_conflict(J: torch.Tensor) -> None:
    d = balancers.get("pcgrad").aggregate(J)
    assert float((J @ d).min()) >= -1e-9 * float(J.norm()) ** 2


@FAST
@given(jacobians(max_tasks=6))
def test_upgrad_and_dualproj_never_conflict_with_a_task(J: torch.Tensor) -> None:
    """Up to the ridge ``reg_eps`` the update lies in the dual cone: ``g_t . d >= 0`` for all t."""
    trace = float((J * J).sum())
    for name in ("upgrad", "dualproj"):
        d = balancers.get(name, reg_eps=1e-9).aggregate(J)
        assert float((J @ d).min()) >= -1e-6 * trace, name


@FAST
@given(jacobians(max_tasks=5, full_rank=True))
def test_imtl_g_projections_on_unit_gradients_are_equal(J: torch.Tensor) -> None:
    d = balancers.get("imtl_g").aggregate(J)
    proj = (J @ d) / J.norm(dim=1)
    torch.testing.assert_close(proj, proj.mean().expand_as(proj), rtol=1e-6, atol=1e-9)


@FAST
@given(jacobians(max_tasks=5, full_rank=True))
def test_aligned_mtl_balance_makes_the_gradient_system_orthogonal_with_equal_norms(J: torch.Tensor) -> None:
    """With ``d = J^T B u`` and ``B G B = lambda_min I`` (full rank): ``||d||^2 = lambda_min ||u||^2``
    and ``J d = G B u = sqrt(lambda_min) G^(1/2) u``."""
    G = J @ J.T
    m = G.shape[0]
    u = torch.full((m,), 1.0 / m, dtype=torch.float64)
    d = balancers.get("aligned_mtl").aggregate(J)
    lam, vec = torch.linalg.eigh(G)
    assert abs(float(d @ d) - float(lam.min()) / m) <= 1e-8 * float(lam.max())
    root = (vec * lam.sqrt()) @ vec.T
    torch.testing.assert_close(J @ d, lam.min().sqrt() * root @ u, rtol=1e-6, atol=1e-9 * float(lam.max()))


@FAST
@given(jacobians(max_tasks=6), st.floats(0.1, 0.9))
def test_cagrad_update_stays_on_the_ball_around_the_mean_gradient(J: torch.Tensor, c: float) -> None:
    d = balancers.get("cagrad", c=c).aggregate(J)
    g0 = J.mean(dim=0)
    if float(g0.norm()) ** 2 < 1e-4 * float((J * J).sum()):
        return  # mean gradient ~ 0: CAGrad returns 0 (Pareto-stationary)
    assert abs(float((d - g0).norm()) - c * float(g0.norm())) <= 1e-6 * float(g0.norm())


@FAST
@given(jacobians(max_tasks=6, full_rank=True))
def test_nash_mtl_weights_solve_the_bargaining_condition(J: torch.Tensor) -> None:
    """Navon et al. (2022), Eq. 3: ``G a = 1/a`` on the raw Gramian, so every task gets
    ``a_t g_t^T d = 1`` and ``||d||^2 = T``. (The weights used to solve it on ``G / ||G||_F``:
    ``sqrt(||G||_F)`` times too long.)"""
    G = J @ J.T
    a = balancers.get("nash_mtl", max_norm=0.0).weights(G)
    torch.testing.assert_close(a * (G @ a), torch.ones_like(a), rtol=1e-6, atol=1e-6)
    d = a @ J
    torch.testing.assert_close(d @ d, torch.tensor(float(J.shape[0]), dtype=J.dtype), rtol=1e-6, atol=0)


@pytest.mark.parametrize("max_norm", [0.0, 1.0])
def test_nash_mtl_update_does_not_depend_on_the_scale_of_the_losses(max_norm: float) -> None:
    """Scaling every loss by c scales G by c^2 and the bargaining weights by 1/c: the update is
    unchanged, clipped or not (it used to be about 21x shorter with losses x0.01)."""
    J = torch.randn(3, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ref = balancers.get("nash_mtl", max_norm=max_norm).aggregate(J)
    for c in (0.01, 30.0):
        torch.testing.assert_close(balancers.get("nash_mtl", max_norm=max_norm).aggregate(c * J), ref, rtol=1e-7, atol=1e-10)


@FAST
@given(jacobians(max_tasks=6, full_rank=True), st.sampled_from([0.5, 1.0, 2.0]))
def test_fairgrad_weights_solve_the_alpha_fair_condition(J: torch.Tensor, alpha: float) -> None:
    G = J @ J.T
    w = balancers.get("fairgrad", alpha=alpha).weights(G)
    torch.testing.assert_close(G @ w, w ** (-1.0 / alpha), rtol=1e-4, atol=1e-6)


@FAST
@given(jacobians(max_tasks=6, full_rank=True))
def test_config_direction_has_equal_positive_cosine_with_every_gradient(J: torch.Tensor) -> None:
    d = balancers.get("config").aggregate(J)
    cos = (J @ d) / (J.norm(dim=1) * d.norm())
    assert float(cos.min()) > 0
    torch.testing.assert_close(cos, cos.mean().expand_as(cos), rtol=1e-6, atol=1e-9)
    # its length is the sum of the projections of the gradients on it
    torch.testing.assert_close(d.norm(), (J @ (d / d.norm())).sum())


@FAST
@given(jacobians(max_tasks=6), st.integers(0, 1000))
def test_graddrop_keeps_one_sign_per_coordinate(J: torch.Tensor, seed: int) -> None:
    d = balancers.get("graddrop", seed=seed).aggregate(J)
    positive, negative = J.clamp(min=0).sum(dim=0), J.clamp(max=0).sum(dim=0)
    assert bool(((d - positive).abs() < 1e-12).logical_or((d - negative).abs() < 1e-12).all())


@FAST
@given(jacobians(max_tasks=6))
def test_gradient_methods_are_scale_consistent(J: torch.Tensor) -> None:
    """Scaling every gradient by s > 0 scales MGDA, UPGrad, DualProj, IMTL-G and ConFIG by s
    (their weights are scale-free), a check of the Gramian normalisations."""
    for name in ("mgda", "upgrad", "dualproj", "imtl_g", "config"):
        a = balancers.get(name).aggregate(J)
        b = balancers.get(name).aggregate(7.0 * J)
        torch.testing.assert_close(b, 7.0 * a, rtol=1e-5, atol=1e-7 * float(J.norm()) * 7), name


def authors_excess_mtl(jacobians: list[torch.Tensor], eta: float) -> list[torch.Tensor]:
    """He et al. (2024), Algorithm 1 as their code runs it: weights start at 1 (summing to T),
    the first step only measures (its excess risks are the baseline), later steps multiply the
    weights by ``exp(eta E / E^0)`` and renormalise to sum T. Returns the updates."""
    n_tasks = jacobians[0].shape[0]
    weights, sq_sum, baseline, out = torch.ones(n_tasks, dtype=torch.float64), 0.0, None, []
    for J in jacobians:
        sq_sum = sq_sum + J * J
        excess = (J * J / torch.sqrt(sq_sum + 1e-7)).sum(dim=1)
        if baseline is None:
            baseline = excess
        else:
            weights = weights * torch.exp(eta * excess / baseline)
            weights = weights / weights.sum() * n_tasks
        out.append(weights @ J)
    return out


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_excess_mtl_follows_the_authors_algorithm(scale: float) -> None:
    """Against the paper's algorithm (not torchjd 0.18, which reweights at the first step with
    raw, scale-dependent excess risks). Our weights live on the simplex, the authors' sum to T:
    our update is theirs divided by T."""
    g = torch.Generator().manual_seed(3)
    jacobians = [scale * torch.randn(3, 200, generator=g, dtype=torch.float64) * torch.tensor([[1.0], [5.0], [0.2]], dtype=torch.float64)
                 for _ in range(6)]
    method = balancers.get("excess_mtl", robust_step_size=0.5)
    for J, expected in zip(jacobians, authors_excess_mtl(jacobians, 0.5)):
        torch.testing.assert_close(method.aggregate(J) * 3, expected, rtol=1e-9, atol=1e-12 * scale)


def test_excess_mtl_first_step_is_uniform_and_later_weights_do_not_depend_on_the_gradient_scale() -> None:
    """Step 1 only measures (uniform weights); afterwards excess risks are divided by their
    baseline, so scaling every gradient by 1000 leaves the weights unchanged. (With the raw
    excess risk at step 1, a 3 x 200 Jacobian sent the weights to one-hot.)"""
    g = torch.Generator().manual_seed(4)
    jacobians = [torch.randn(3, 200, generator=g, dtype=torch.float64) for _ in range(4)]
    small, large = balancers.get("excess_mtl"), balancers.get("excess_mtl")
    torch.testing.assert_close(small.aggregate(jacobians[0]), jacobians[0].mean(dim=0))
    large.aggregate(1000 * jacobians[0])
    for J in jacobians[1:]:
        small.aggregate(J)
        large.aggregate(1000 * J)
        torch.testing.assert_close(small.w, large.w, rtol=1e-5, atol=0)  # type: ignore[attr-defined]  (the 1e-7 in sqrt(S + 1e-7))
        assert float(small.w.max()) < 0.9  # type: ignore[attr-defined]


def test_gradvac_raises_similarity_towards_its_target() -> None:
    """With target phi_hat = 0 after one step of two opposed gradients (cos = -1 < 0 target),
    GradVac adds enough of g_j that the corrected g_i is orthogonal to g_j (the paper's rule for
    phi_hat = 0 reduces to PCGrad's projection)."""
    J = torch.tensor([[1.0, 0.2], [-1.0, 0.5]], dtype=torch.float64)
    method = balancers.get("gradvac", beta=1.0)
    method.aggregate(J)  # phi_hat <- observed cosines (beta = 1)
    state = method.state_dict()
    state["_extra_state"] = {**state["_extra_state"], "phi_hat": torch.zeros(2, 2, dtype=torch.float64)}
    method.load_state_dict(state)
    w = method.weights(J @ J.T)
    d = w @ J
    pcgrad = balancers.get("pcgrad").aggregate(J)
    torch.testing.assert_close(d, pcgrad, rtol=1e-6, atol=1e-8)


def test_sdmgrad_weights_are_the_preference_mix_of_simplex_weights() -> None:
    J = torch.randn(4, 9, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lam = 0.3
    w = balancers.get("sdmgrad", lambda_=lam).weights(J @ J.T)
    inner = w * (1 + lam) - lam / 4
    assert float(inner.min()) >= -1e-12 and abs(float(inner.sum()) - 1) < 1e-9
    assert abs(float(w.sum()) - 1) < 1e-9


def test_moco_tracks_gradients_and_its_weights_move_towards_the_min_norm_point() -> None:
    """With a constant Jacobian the tracked gradients stay equal to it, and the projected-gradient
    steps on lambda decrease ||Y^T lambda|| towards MGDA's min-norm value."""
    J = torch.tensor([[1.0, 0.0, 0.3], [-0.6, 1.0, 0.0], [0.2, 0.4, 1.0]], dtype=torch.float64)
    method = balancers.get("moco", gamma=0.5, gamma_sigma=0.0)
    norms = [float(method.aggregate(J).norm()) for _ in range(200)]
    torch.testing.assert_close(method.tracked, J)  # type: ignore[attr-defined]
    assert all(b <= a + 1e-12 for a, b in zip(norms, norms[1:]))
    assert abs(norms[-1] - float(balancers.get("mgda").aggregate(J).norm())) < 1e-4


def test_moco_tracking_averages_noisy_gradients() -> None:
    """Y_k is an exponentially weighted average: its distance to the mean gradient shrinks
    below that of a single noisy draw."""
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(2, 30, generator=g, dtype=torch.float64)
    method = balancers.get("moco", beta=0.2, beta_sigma=0.0)
    for _ in range(200):
        method.aggregate(mean + torch.randn(2, 30, generator=g, dtype=torch.float64))
    single = float((torch.randn(2, 30, generator=g, dtype=torch.float64)).norm())
    assert float((method.tracked - mean).norm()) < 0.5 * single  # type: ignore[attr-defined]


GRADIENT_METHODS = [n for n in balancers.names() if balancers.modes(n)]


@FAST
@given(jacobians(min_tasks=2, max_tasks=5), st.integers(0, 4), st.sampled_from(GRADIENT_METHODS))
def test_a_task_without_labels_is_left_out_of_the_aggregation(J: torch.Tensor, where: int, name: str) -> None:
    """A task declared absent (``present`` False: no label in the batch) gets weight 0, and the
    update is exactly the method's on the present tasks alone, whatever the absent row holds
    (every method, stateful ones at their first step)."""
    where = where % (J.shape[0] + 1)
    junk = torch.full((1, J.shape[1]), 3.0, dtype=J.dtype)
    with_absent = torch.cat([J[:where], junk, J[where:]])
    present = torch.ones(J.shape[0] + 1, dtype=torch.bool)
    present[where] = False
    d = balancers.get(name).aggregate(with_absent, present=present)
    torch.testing.assert_close(d, balancers.get(name).aggregate(J))
    if not balancers.get(name).needs_jacobian:  # type: ignore[attr-defined]
        w = balancers.get(name).weights(with_absent @ with_absent.T, present=present)
        assert float(w[where]) == 0.0 and torch.isfinite(w).all()


# what each stateful method keeps per task: (field, index of task t in it)
PER_TASK_STATE = {
    "nash_mtl": [("alpha", lambda t: t)],
    "gradvac": [("phi_hat", lambda t: t), ("phi_hat", lambda t: (slice(None), t))],
    "sdmgrad": [("w", lambda t: t)],
    "moco": [("tracked", lambda t: t), ("lam", lambda t: t)],
    "excess_mtl": [("w", lambda t: t), ("sq_sum", lambda t: t), ("baseline_sum", lambda t: t), ("seen", lambda t: t)],
}


@pytest.mark.parametrize("name", list(PER_TASK_STATE))
def test_an_absent_task_keeps_its_state(name: str) -> None:
    """While a task is absent its share of the method's state is left as it was (each
    docstring says so); the others' state moves, and simplex weights keep summing to 1."""
    g = torch.Generator().manual_seed(7)
    method = balancers.get(name)
    for _ in range(2):
        method.aggregate(torch.randn(4, 9, generator=g, dtype=torch.float64))
    before = {k: v.clone() for k, v in method.get_extra_state().items() if isinstance(v, torch.Tensor)}
    present = torch.tensor([True, False, True, True])
    method.aggregate(torch.randn(4, 9, generator=g, dtype=torch.float64), present=present)
    after = method.get_extra_state()
    for field, index in PER_TASK_STATE[name]:
        torch.testing.assert_close(after[field][index(1)], before[field][index(1)])
    assert any(not torch.equal(after[f], before[f]) for f, _ in PER_TASK_STATE[name])  # the present tasks' moved
    simplex = {"sdmgrad": "w", "moco": "lam", "excess_mtl": "w"}.get(name)
    if simplex is not None:
        assert abs(float(after[simplex].sum()) - 1.0) < 1e-12


@FAST
@given(jacobians(min_tasks=2, max_tasks=5), st.integers(0, 4))
def test_mgda_with_a_present_zero_gradient_returns_zero(J: torch.Tensor, where: int) -> None:
    """Without a mask every row is a present task: a zero gradient makes 0 the min-norm point of
    the convex hull (Sener and Koltun's definition), so MGDA stops instead of ignoring it."""
    where = where % (J.shape[0] + 1)
    with_zero = torch.cat([J[:where], torch.zeros(1, J.shape[1], dtype=J.dtype), J[where:]])
    assert float(balancers.get("mgda").aggregate(with_zero).norm()) <= 1e-6 * float(J.norm())


def opposite_pairs(count: int, dtype: torch.dtype = torch.float64, seed: int = 0):  # type: ignore[no-untyped-def]
    """``count`` seeded pairs ``(g, -c g)``: random length P, scale of g and ratio c."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(count):
        n_params = int(torch.randint(2, 80, (1,), generator=gen))
        scale = 10 ** float(torch.empty(1).uniform_(-3, 3, generator=gen))
        ratio = 10 ** float(torch.empty(1).uniform_(-2, 2, generator=gen))
        g = torch.randn(n_params, generator=gen, dtype=torch.float64) * scale
        pair = torch.stack([g, -ratio * g]) if bool(torch.rand(1, generator=gen) < 0.5) else torch.stack([-ratio * g, g])
        yield pair.to(dtype)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_config_returns_zero_for_exactly_opposite_gradients(dtype: torch.dtype) -> None:
    """For ``g`` and ``-c g`` the vector 1 is orthogonal to the range of the unit gradients
    ``U``, so ``U^+ 1 = 0`` and ConFIG's update is 0 (Liu et al. 2025, Eq. 2). A pseudo-inverse
    that keeps a rounding-level eigenvalue or component returned a full-length update along one
    gradient (raising the other task's loss) for about 40 % of such pairs."""
    method = balancers.get("config")
    for J in opposite_pairs(300, dtype):
        d = method.aggregate(J)
        assert torch.isfinite(d).all()
        assert float(d.norm()) <= 1e-9 * float(J.norm()), f"update of norm {float(d.norm()):.3g}"


def test_config_nearly_opposite_gradients_still_get_the_equal_cosine_bisector() -> None:
    """The rank decision only removes rounding noise: gradients that are 1e-4 (relative) away
    from opposite keep ConFIG's nonzero update with equal positive cosines."""
    gen = torch.Generator().manual_seed(1)
    for _ in range(50):
        g, h = torch.randn(2, 30, generator=gen, dtype=torch.float64)
        J = torch.stack([g, -2.5 * g + 1e-4 * float(g.norm()) * h / float(h.norm())])
        d = balancers.get("config").aggregate(J)
        cos = (J @ d) / (J.norm(dim=1) * d.norm())
        assert float(cos.min()) > 0
        torch.testing.assert_close(cos[0], cos[1], rtol=1e-5, atol=0)
