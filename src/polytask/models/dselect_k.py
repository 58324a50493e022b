"""DSelect-k mixture of experts (Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen, Mazumder, Hong and
Chi 2021, "DSelect-k: differentiable selection in the mixture of experts with applications to
multi-task learning", NeurIPS).

MMoE's structure (``E`` shared experts, a gate and a tower per task) with each softmax gate
replaced by a DSelect-k gate (:class:`polytask.models.gates.DSelectGate`): ``k`` single-expert
selectors built from smooth-step functions of ``ceil(log2 E)`` binary-code logits, mixed by a
softmax. Trained by ordinary gradient descent, each task's gate converges to at most ``k``
experts with exactly non-zero weight,

    y_t = tower_t( sum_e g_t(x)_e f_e(x) ),     |{e : g_t(x)_e > 0}| <= k  (at convergence).

``gate="per_example"`` (default) computes the selector logits from the row; ``gate="static"``
learns one selection per task and then ``penalty()`` adds the paper's entropy regularizer
``entropy_weight * sum_t H(r_t)`` that speeds convergence to a binary selection.

Balancing: as MMoE, the experts are shared, gates and towers task-specific, and the shared
representation is the stack of expert outputs ``(n, E, k)``. User modules as for MMoE:
``expert_module`` and ``head_module``, no ``trunk_module``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from polytask.errors import PolytaskError
from polytask.models.gates import DSelectGate
from polytask.models.mmoe import MultiGateMixture
from polytask.models.options import LayerOptions, choice_option, float_option, int_option

GATE_KINDS = ("per_example", "static")


class DSelectK(MultiGateMixture):
    """Shared experts; per task a DSelect-k gate selecting at most ``k`` of them, and a tower."""

    arch = "dselect_k"
    representation = "stacked expert outputs (n, E, k)"

    def __init__(
        self,
        input_dim: int | None = None,
        output_dims: dict[str, int] | None = None,
        layers: LayerOptions | None = None,
        *,
        input_shape: Sequence[int] | None = None,
        n_experts: int = 4,
        k: int = 2,
        gamma: float = 1.0,
        gate: str = "per_example",
        entropy_weight: float = 1e-3,
        **layer_options: Any,
    ) -> None:
        self.k = int_option(k, "k")
        self.gate_kind = choice_option(gate, "gate", GATE_KINDS)
        self.gamma = float_option(gamma, "gamma", low=1e-6)
        self.entropy_weight = float_option(entropy_weight, "entropy_weight", low=0.0)
        if self.k > int_option(n_experts, "n_experts"):
            raise PolytaskError(f"option 'k' ({self.k}) cannot exceed n_experts ({n_experts})")
        super().__init__(input_dim, output_dims, layers, input_shape=input_shape, n_experts=n_experts, gate_hidden=(),
                         **layer_options)

    def _specific_config(self) -> dict[str, object]:
        return {"n_experts": self.n_experts, "k": self.k, "gamma": self.gamma, "gate": self.gate_kind,
                "entropy_weight": self.entropy_weight}

    def make_gate(self) -> nn.Module:
        return DSelectGate(self.flat_input_dim, self.n_experts, self.k, self.gamma, per_example=self.gate_kind == "per_example")

    def penalty(self) -> torch.Tensor | None:
        if self.gate_kind != "static" or self.entropy_weight == 0:
            return None
        entropies = [gate.entropy() for gate in self.gates.values()]
        return self.entropy_weight * torch.stack([e for e in entropies if e is not None]).sum()
