"""Small solvers shared by the aggregation methods, on T x T Gramians (float64, CPU, numpy).

Quadratic programs go to quadprog through qpsolvers (a maintained solver); nothing here is a
general QP solver of our own.
"""

from __future__ import annotations

import numpy as np
import torch
from qpsolvers import solve_qp

from polytask.errors import PolytaskError


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


def dual_cone_weights(gram: torch.Tensor, lower: torch.Tensor) -> torch.Tensor:
    """``argmin_v v^T G v`` subject to ``v >= u``, for each row ``u`` of ``lower`` (shape (k, T)).

    By Proposition 1 of Quinton and Rey (2024), ``J^T v`` is then the projection of ``J^T u``
    onto the dual cone ``{x : J x >= 0}`` of the rows of ``J``.
    """
    g = _np(gram)
    m = g.shape[0]
    zeros, minus_eye = np.zeros(m), -np.eye(m)
    out = []
    for u in _np(lower).reshape(-1, m):
        v = solve_qp(g, zeros, minus_eye, -u, solver="quadprog")
        if v is None:
            raise PolytaskError("the dual-cone projection failed (quadprog found no solution); try a larger reg_eps")
        out.append(v)
    return torch.as_tensor(np.stack(out), dtype=gram.dtype, device=gram.device).reshape(lower.shape)


def simplex_min_norm(gram: torch.Tensor) -> torch.Tensor:
    """``argmin_{w in simplex} w^T G w``: the min-norm point of the convex hull of the rows of J."""
    g = _np(gram)
    m = g.shape[0]
    w = solve_qp(g, np.zeros(m), -np.eye(m), np.zeros(m), np.ones((1, m)), np.ones(1), solver="quadprog")
    if w is None:
        raise PolytaskError("the min-norm problem failed (quadprog found no solution)")
    w = np.clip(w, 0.0, None)
    return torch.as_tensor(w / w.sum(), dtype=gram.dtype, device=gram.device)


def rank_tolerance(eigenvalues: torch.Tensor, eps: float) -> float:
    """The level at or below which an eigenvalue of a T x T Gramian is numerically zero.

    ``T * lambda_max * 5 eps``: an eigenvalue moves by at most the spectral norm of the error
    of the matrix, at most ``T`` times its largest entry error, and each entry of a computed
    (and normalised) Gramian carries a few roundings of ``eps`` (the unit roundoff of the
    precision the Gramian was computed in) relative to ``lambda_max``.
    """
    m = eigenvalues.shape[0]
    return float(eigenvalues.abs().max()) * m * 5.0 * eps if m else 0.0


def pinv_solve(gram: torch.Tensor, rhs: torch.Tensor, eps: float) -> torch.Tensor:
    """``G^+ rhs`` for a symmetric positive semi-definite ``G``, with two rank decisions.

    With ``G = V diag(lambda) V^T``: eigenvalues at or below :func:`rank_tolerance` are zero,
    and so is a component ``c_k = v_k^T rhs`` of the right-hand side that is within its own
    rounding error, ``|c_k| <= ||rhs|| tol / lambda_k`` (an eigenvector is known to about
    ``tol / lambda_k``). Without the second decision, a ``rhs`` orthogonal to the range of
    ``G`` (e.g. ``1`` for two opposite unit gradients) returns rounding noise scaled up by
    ``1 / lambda_k`` instead of 0.
    """
    lam, vec = torch.linalg.eigh(gram)
    tol = rank_tolerance(lam, eps)
    keep = lam > tol
    lam, vec = lam[keep], vec[:, keep]
    coef = vec.T @ rhs
    coef = torch.where(coef.abs() <= float(rhs.norm()) * tol / lam, torch.zeros_like(coef), coef)
    return vec @ (coef / lam)


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
