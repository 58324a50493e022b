"""Gates of mixture-of-experts architectures: softmax gates (MMoE, CGC/PLE) and DSelect-k gates.

A gate maps a row to non-negative weights over ``E`` experts that sum to one.

- softmax gate: ``g(x) = softmax(W h(x))`` with ``h`` an optional MLP (``gate_hidden``);
- DSelect-k gate (Hazimeh et al. 2021): see :class:`DSelectGate`.

Gates read the input row flattened (images included), so they never share parameters with the
experts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from polytask.models.layers import mlp


class SoftmaxGate(nn.Module):
    """``g(x) = softmax(W mlp(x) + b)`` over ``n_experts``."""

    def __init__(self, in_dim: int, n_experts: int, hidden: Sequence[int] = (), activation: str = "relu") -> None:
        super().__init__()
        self.body = mlp(in_dim, hidden, activation)
        self.out = nn.Linear(int(hidden[-1]) if len(hidden) else in_dim, n_experts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.out(self.body(x.flatten(1))), dim=-1)


def smooth_step(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """Cubic smooth-step (Hazimeh et al. 2020): 0 below ``-gamma/2``, 1 above ``gamma/2``,
    ``-2 t^3 / gamma^3 + 3 t / (2 gamma) + 1/2`` between; continuously differentiable."""
    inner = -2.0 / gamma**3 * t.pow(3) + 3.0 / (2.0 * gamma) * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), inner))


class DSelectGate(nn.Module):
    """DSelect-k gate (Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong and Chi 2021,
    "DSelect-k: differentiable selection in the mixture of experts with applications to
    multi-task learning", NeurIPS).

    With ``m = ceil(log2 E)`` binary digits, each of ``k`` single-expert selectors has logits
    ``z_i in R^m`` and gives expert ``j`` (binary code ``b_j``) the weight

        r_i(j) = prod_l [ S(z_il) if b_jl = 1 else 1 - S(z_il) ],

    with ``S`` the smooth step; ``sum_j r_i(j) = 1`` over all ``2^m`` codes and, once every
    ``S(z_il)`` reaches 0 or 1, ``r_i`` selects exactly one expert. The ``k`` selectors are mixed
    by ``w = softmax(a)``: ``g = sum_i w_i r_i``, at most ``k`` non-zero weights.
    ``per_example=True`` computes ``z`` and ``a`` from the row (``z = U x``, ``a = V x``); otherwise
    they are free parameters (task-only gating).

    Deviation: when ``E`` is not a power of two, codes ``>= E`` select no expert; the paper adds a
    ``1 / sum_j r_i(j)`` regularizer against them, here ``r_i`` is renormalized over the ``E`` real
    experts instead (the two agree once that mass is 1).
    """

    def __init__(self, in_dim: int, n_experts: int, k: int, gamma: float = 1.0, per_example: bool = True) -> None:
        super().__init__()
        self.n_experts, self.k, self.gamma, self.per_example = int(n_experts), int(k), float(gamma), bool(per_example)
        self.n_bits = max(1, math.ceil(math.log2(self.n_experts)))
        codes = [[(j >> (self.n_bits - 1 - b)) & 1 for b in range(self.n_bits)] for j in range(self.n_experts)]
        self.register_buffer("codes", torch.tensor(codes, dtype=torch.bool), persistent=False)
        bound = self.gamma / 100
        if self.per_example:
            self.z_logits = nn.Linear(in_dim, self.k * self.n_bits)
            self.w_logits = nn.Linear(in_dim, self.k)
            nn.init.uniform_(self.z_logits.weight, -bound, bound)
            nn.init.uniform_(self.z_logits.bias, -bound, bound)
        else:
            self.z_param = nn.Parameter(torch.empty(self.k, self.n_bits).uniform_(-bound, bound))
            self.w_param = nn.Parameter(torch.empty(self.k).uniform_(0.0, 1.0))

    def selectors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(r, w)``: selector outputs ``(n, k, E)`` and selector weights ``(n, k)``."""
        n = x.shape[0]
        if self.per_example:
            flat = x.flatten(1)
            z = self.z_logits(flat).view(n, self.k, 1, self.n_bits)
            a = self.w_logits(flat)
        else:
            z = self.z_param.view(1, self.k, 1, self.n_bits).expand(n, -1, -1, -1)
            a = self.w_param.view(1, self.k).expand(n, -1)
        s = smooth_step(z, self.gamma)  # (n, k, 1, m)
        r = torch.where(self.codes.view(1, 1, self.n_experts, self.n_bits), s, 1 - s).prod(dim=-1)  # (n, k, E)
        if self.n_experts != 2**self.n_bits:
            r = r / r.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return r, torch.softmax(a, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, w = self.selectors(x)
        return (w.unsqueeze(-1) * r).sum(dim=1)

    def entropy(self) -> torch.Tensor | None:
        """Summed entropy of the static selectors ``-sum_i sum_j r_i(j) log r_i(j)`` (the paper's
        regularizer pushing each selector to one expert); None for per-example gates."""
        if self.per_example:
            return None
        r, _ = self.selectors(self.z_param.new_zeros((1, 1)))
        return -(r * torch.log(r + 1e-6)).sum()
