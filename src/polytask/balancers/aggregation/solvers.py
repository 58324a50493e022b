"""Small solvers shared by the aggregation methods, on T x T Gramians (float64, CPU, numpy).

Quadratic programs go to quadprog through qpsolvers (a maintained solver); nothing here is a
general QP solver of our own. Tolerances take ``entry_error``, the relative rounding error of
the Gramian's entries (:attr:`polytask.balancers.aggregation.base.Problem.entry_error`): it
follows the precision the gradients were computed in, not the float64 the Gramian is solved in.

quadprog needs a positive definite matrix. A computed Gramian is only semi-definite up to its
rounding (a float32 one cast to float64 can have eigenvalues of ``-1e-7 lambda_max``), so the
QPs here are solved on its projection onto the semi-definite cone (:func:`psd_part`) plus a
ridge; if quadprog still fails, :class:`QPFailure` is raised for the caller's documented
fallback.
"""

from __future__ import annotations

import numpy as np
import torch
from qpsolvers import solve_qp
from scipy.optimize import minimize, nnls

from polytask.errors import PolytaskError


class QPFailure(PolytaskError):
    """quadprog found no solution (after the positive semi-definite clean-up and the ridge)."""


def normalized(gram: torch.Tensor, norm_eps: float) -> torch.Tensor:
    """``G / trace(G)`` (the Gramian of J scaled to unit Frobenius norm); zeros if the trace is below ``norm_eps``."""
    trace = torch.diagonal(gram).sum()
    if trace < norm_eps:
        return torch.zeros_like(gram)
    return gram / trace


def regularized(gram: torch.Tensor, eps: float) -> torch.Tensor:
    """``G + eps I`` (makes a numerically semi-definite Gramian definite for quadprog)."""
    return gram + eps * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float64)


def psd_part(gram: torch.Tensor) -> torch.Tensor:
    """``V max(lambda, 0) V^T``: the nearest positive semi-definite matrix (in Frobenius norm) to
    the symmetrised Gramian. Only the negative eigenvalues, which rounding alone produces, move."""
    lam, vec = torch.linalg.eigh((gram + gram.T) / 2)
    if bool((lam >= 0).all()):
        return gram
    return (vec * lam.clamp(min=0.0)) @ vec.T


def _qp(g: np.ndarray, lower: np.ndarray, equality: bool) -> np.ndarray:
    m = g.shape[0]
    a, b = (np.ones((1, m)), np.ones(1)) if equality else (None, None)
    try:
        x = solve_qp(g, np.zeros(m), -np.eye(m), -lower, a, b, solver="quadprog")
    except Exception as exc:  # qpsolvers' ProblemError ("not positive definite"), quadprog's ValueError
        raise QPFailure(f"quadprog failed: {exc}") from None
    if x is None or not np.all(np.isfinite(x)):
        raise QPFailure("quadprog found no solution")
    return x


def dual_cone_weights(gram: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """``argmin_v v^T G v`` subject to ``v >= u``, for each row ``u`` of ``lower`` (shape (k, T)).

    By Proposition 1 of Quinton and Rey (2024), ``J^T v`` is then the projection of ``J^T u``
    onto the dual cone ``{x : J x >= 0}`` of the rows of ``J``. Solved with quadprog; if it
    fails, as the equivalent non-negative least-squares problem ``min_{x >= 0} ||R (u + x)||``
    with ``G = R^T R`` (scipy's ``nnls``, exact on a semi-definite ``G``).
    """
    g = _np(gram)
    m = g.shape[0]
    out = []
    for u in _np(lower).reshape(-1, m):
        try:
            out.append(_qp(g, u, equality=False))
        except QPFailure:
            lam, vec = np.linalg.eigh(g)
            root = (vec * np.sqrt(np.clip(lam, 0.0, None))).T  # R with R^T R = G
            x, _ = nnls(root, -root @ u)
            out.append(u + x)
    return torch.as_tensor(np.stack(out), dtype=gram.dtype, device=gram.device).reshape(lower.shape)


def simplex_min_norm(gram: torch.Tensor) -> torch.Tensor:
    """``argmin_{w in simplex} w^T G w``: the min-norm point of the convex hull of the rows of J
    (quadprog; raises :class:`QPFailure` when it finds no solution)."""
    g = _np(gram)
    w = np.clip(_qp(g, np.zeros(g.shape[0]), equality=True), 0.0, None)
    return torch.as_tensor(w / w.sum(), dtype=gram.dtype, device=gram.device)


def simplex_min_norm_slsqp(gram: torch.Tensor) -> torch.Tensor:
    """The same min-norm point with scipy's SLSQP (the fallback when quadprog fails: it accepts a
    semi-definite matrix), from ``1/T``, to ``ftol = 1e-15``."""
    g = _np(gram)
    m = g.shape[0]
    res = minimize(lambda w: (float(w @ g @ w), 2.0 * g @ w), np.full(m, 1.0 / m), jac=True, method="SLSQP",
                   bounds=[(0.0, 1.0)] * m, options={"ftol": 1e-15, "maxiter": 1000},
                   constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones_like(w)},))
    w = np.clip(res.x, 0.0, None)
    return torch.as_tensor(w / w.sum(), dtype=gram.dtype, device=gram.device)


def rank_tolerance(eigenvalues: torch.Tensor, entry_error: float) -> float:
    """The level at or below which an eigenvalue of a T x T Gramian is numerically zero.

    ``T lambda_max entry_error``: an eigenvalue moves by at most the spectral norm of the error
    of the matrix, at most ``T`` times its largest entry error, and each entry of a computed
    Gramian is known to ``entry_error`` relative to ``lambda_max``.
    """
    m = eigenvalues.shape[0]
    return float(eigenvalues.abs().max()) * m * entry_error if m else 0.0


def pinv_solve(gram: torch.Tensor, rhs: torch.Tensor, entry_error: float) -> torch.Tensor:
    """``G^+ rhs`` for a symmetric positive semi-definite ``G``, with two rank decisions.

    With ``G = V diag(lambda) V^T``: eigenvalues at or below :func:`rank_tolerance` are zero,
    and so is a component ``c_k = v_k^T rhs`` of the right-hand side that is within its own
    rounding error, ``|c_k| <= ||rhs|| tol / lambda_k`` (an eigenvector is known to about
    ``tol / lambda_k``). Without the second decision, a ``rhs`` orthogonal to the range of
    ``G`` (e.g. ``1`` for two opposite unit gradients) returns rounding noise scaled up by
    ``1 / lambda_k`` instead of 0.
    """
    lam, vec = torch.linalg.eigh(gram)
    tol = rank_tolerance(lam, entry_error)
    keep = lam > tol
    lam, vec = lam[keep], vec[:, keep]
    coef = vec.T @ rhs
    coef = torch.where(coef.abs() <= float(rhs.norm()) * tol / lam, torch.zeros_like(coef), coef)
    return vec @ (coef / lam)


def face_of(weights: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The present tasks' share of simplex weights, renormalised to their own simplex (uniform
    when they hold none), and the mass they held."""
    if bool(present.all()):  # the whole simplex: unchanged (no renormalisation rounding)
        return weights.to(torch.float64).clone(), 1.0
    sub = weights[present].to(torch.float64)
    mass = float(sub.sum())
    if mass <= 0:
        return torch.full_like(sub, 1.0 / max(sub.shape[0], 1)), mass
    return sub / mass, mass


def to_face(weights: torch.Tensor, present: torch.Tensor, sub: torch.Tensor, mass: float) -> torch.Tensor:
    """``weights`` with the present tasks' entries replaced by ``sub`` (on their simplex) scaled
    to the mass they held (the whole simplex when they held none), the absent ones kept."""
    if bool(present.all()):
        return sub.to(torch.float64).clone()
    out = weights.clone().to(torch.float64)
    if mass <= 0:  # the present tasks held no weight: take the simplex back from the absent ones
        out.zero_()
        mass = 1.0
    out[present] = sub.to(torch.float64).to(out.device) * mass
    return out


def project_simplex(y: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the probability simplex (sort-based closed form, Held et al. 1974)."""
    m = y.shape[0]
    s, _ = torch.sort(y, descending=True)
    cumulative = torch.cumsum(s, 0) - 1.0
    k = torch.arange(1, m + 1, dtype=y.dtype, device=y.device)
    ok = s - cumulative / k > 0
    rho = int(torch.nonzero(ok).max()) if ok.any() else 0
    theta = cumulative[rho] / (rho + 1)
    return (y - theta).clamp(min=0.0)
