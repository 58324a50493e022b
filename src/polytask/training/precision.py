"""Mixed precision and compilation of the training step's forward pass.

- ``bf16``: the forward pass runs under ``torch.autocast`` with bfloat16 (CPU or CUDA); the
  parameters stay float32, the outputs are widened to float32 before the losses, and the
  gradient engine widens what it reads from the graph, so Gramians and weights are float32 or
  better.
- ``fp16`` (CUDA only): autocast with float16 and dynamic gradient scaling
  (``torch.amp.GradScaler``). The scale ``S`` (a power of two, so scaling is exact) multiplies
  the gradients that flow back from the outputs into the network (:class:`ScaleGradient`), not
  the losses: every balancer still sees the true loss values, gradient-aggregation methods
  divide what they read by ``S`` (``StepContext.grad_scale``), the balancer's own parameters'
  gradients are multiplied by ``S`` so that unscaling leaves them as they were, and a step
  whose gradients overflowed is skipped (the scaler lowers ``S``).
- ``compile``: ``torch.compile`` of ``encode`` and ``decode_packed`` for the training steps
  (validation and prediction run the plain network). A compiled graph cannot be read by the
  engine's fast paths nor batched over tasks, so gradient aggregation then takes the exact
  generic path (one backward pass per task, :mod:`polytask.generic_gradients`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch

from polytask.errors import PolytaskError
from polytask.gradients import widen

__all__ = ["DTYPES", "ScaleGradient", "autocast", "check_precision", "compiled", "gradient_scaler", "widen"]

#: The autocast dtype of each reduced precision.
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """fp16 needs CUDA (on the CPU, bf16 is the reduced precision that autocast supports well)."""
    if precision == "fp16" and device.type != "cuda":
        raise PolytaskError(f"precision fp16 needs a CUDA device (this run trains on '{device}'); use bf16 on the CPU")


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The context of the forward pass: autocast at the reduced precision, or nothing."""
    if precision not in DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[precision])


def gradient_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A dynamic gradient scaler for fp16, else None."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


class ScaleGradient(torch.autograd.Function):
    """Identity forward; the gradient multiplied by ``scale`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return grad * ctx.scale.to(grad.dtype), None


def compiled(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compile(fn)``, with AOTAutograd's donated buffers and inductor's in-place buffer
    reuse turned off for the process.

    The engine's generic path runs one backward pass per task over the same graph
    (``retain_graph=True``), so a compiled backward must leave its saved tensors as they were.
    By default it may free ("donate") them, which torch then refuses to run twice, and inductor
    may write a kernel's output into the buffer of an input it considers dead, a saved tensor
    included: the first task's gradient is then right and the others are silently wrong
    (measured on a 256-128 trunk at batch 512; small graphs happened not to reuse).
    The settings are torch's own and process-wide (a recompilation, e.g. for a new batch shape,
    does not see a setting scoped to the call), and they only give up memory optimisations of
    compiled kernels.
    """
    import torch._functorch.config
    import torch._inductor.config

    torch._functorch.config.donated_buffer = False
    torch._inductor.config.inplace_buffers = False
    return torch.compile(fn)
