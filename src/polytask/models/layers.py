"""Building blocks: configurable MLPs and task heads."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from polytask.errors import PolytaskError
from polytask.models.names import ACTIVATION_NAMES, NORMS

ACTIVATIONS: dict[str, type[nn.Module]] = dict(
    zip(ACTIVATION_NAMES, (nn.ReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.SiLU, nn.ELU, nn.LeakyReLU), strict=True)
)


def mlp(
    in_dim: int,
    widths: Sequence[int],
    activation: str = "relu",
    dropout: float = 0.0,
    norm: str = "none",
) -> nn.Sequential:
    """``[Linear -> norm -> activation -> dropout] * len(widths)``; empty widths is the identity."""
    if activation not in ACTIVATIONS:
        raise PolytaskError(f"unknown activation '{activation}' (choose from {', '.join(ACTIVATIONS)})")
    if norm not in NORMS:
        raise PolytaskError(f"unknown normalization '{norm}' (choose from {', '.join(NORMS)})")
    if not 0.0 <= dropout < 1.0:
        raise PolytaskError(f"dropout must be in [0, 1), got {dropout}")
    layers: list[nn.Module] = []
    d = in_dim
    for w in widths:
        if int(w) < 1:
            raise PolytaskError(f"layer widths must be positive, got {w}")
        layers.append(nn.Linear(d, int(w)))
        if norm == "batch":
            layers.append(nn.BatchNorm1d(int(w)))
        elif norm == "layer":
            layers.append(nn.LayerNorm(int(w)))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        d = int(w)
    return nn.Sequential(*layers)


def head(in_dim: int, out_dim: int, hidden: Sequence[int] = (), activation: str = "relu", dropout: float = 0.0) -> nn.Sequential:
    """A task head: optional hidden layers, then a linear output layer of ``out_dim`` units.

    The output is raw: logits for classification (sigmoid / softmax live in the loss and in
    decoding), standardized values for regression.
    """
    body = mlp(in_dim, hidden, activation=activation, dropout=dropout)
    last = int(hidden[-1]) if len(hidden) else in_dim
    body.append(nn.Linear(last, out_dim))
    return body
