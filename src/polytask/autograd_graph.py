"""Reading the autograd graph of one training step (no computation, only structure).

Two facts let the gradient engine skip work that a generic Jacobian would do:

- *per-task roots*: when the loss vector is ``stack(l_1, ..., l_T)`` followed only by
  element-wise operations (the trainer's ``* alpha``), task t's gradient starts at the t-th input
  of the stack, so its head can be differentiated alone (T cheap passes instead of one pass over
  all heads for every task);
- *linear sites*: for a ``Linear`` layer ``y = x W^T + b`` whose weight is used nowhere else, the
  per-task gradient of ``W`` is ``dY_t^T x``. The layer's input ``x`` is already saved in the
  graph, so the engine only needs the per-task output gradients ``dY_t``; Gramian entries and
  the combined gradient follow from ``x`` and ``dY`` without forming the T per-task weight
  gradients.

Anything not recognised is left to the generic path, so these are optimisations, never
assumptions: the result is the same either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch.autograd.graph import GradientEdge, Node


@dataclass
class LinearSite:
    """A linear layer inside the graph: ``y = x W^T (+ b)``.

    Attributes:
        edge: the gradient edge of ``y`` (differentiating with respect to it gives ``dY``).
        x: the layer input saved by autograd, shape (m, d_in).
        weight: index of ``W`` (shape (d_out, d_in)) in the parameter list.
        bias: index of ``b`` in the parameter list, or None.
    """

    edge: GradientEdge
    x: torch.Tensor
    weight: int
    bias: int | None


def _walk(starts: Iterable[Node | None], stop: set[Node]) -> tuple[list[Node], dict[Node, int]]:
    """Nodes reachable from ``starts`` without entering ``stop``, and how many edges point at each."""
    refs: dict[Node, int] = {}
    order: list[Node] = []
    stack = [n for n in starts if n is not None]
    for n in stack:
        refs[n] = refs.get(n, 0) + 1
    seen: set[Node] = set()
    while stack:
        node = stack.pop()
        if node in seen or node in stop:
            continue
        seen.add(node)
        order.append(node)
        for nxt, _ in node.next_functions:
            if nxt is None:
                continue
            refs[nxt] = refs.get(nxt, 0) + 1
            if nxt not in seen:
                stack.append(nxt)
    return order, refs


def _param_of(node: Node | None) -> torch.Tensor | None:
    if node is not None and type(node).__name__ == "AccumulateGrad":
        return node.variable  # type: ignore[attr-defined]
    return None


def reaches_any(starts: Iterable[Node | None], params: Sequence[torch.Tensor], stop: Node | None) -> bool:
    """Whether any of ``params`` is reachable from ``starts`` without passing through ``stop``."""
    ids = {id(p) for p in params}
    order, refs = _walk(starts, {stop} if stop is not None else set())
    return any(id(_param_of(n)) in ids for n in list(refs) if _param_of(n) is not None)


def linear_sites(start: Node | None, params: Sequence[torch.Tensor]) -> tuple[list[LinearSite], list[int]]:
    """Linear layers of ``params`` found below ``start``, and the indices of the other parameters.

    A weight is a site only when its only use in the graph is that one matrix product (no weight
    tying, no second use), the product is plain (``alpha = beta = 1``) and its input is 2-D. A
    bias is folded into its site only when it, too, is used nowhere else.
    """
    index = {id(p): i for i, p in enumerate(params)}
    order, refs = _walk([start], set())
    sites: list[LinearSite] = []
    covered: set[int] = set()
    for node in order:
        kind = type(node).__name__
        nf = node.next_functions
        if kind == "AddmmBackward0" and len(nf) == 3:
            bias_node, w_t = nf[0][0], nf[2][0]
            if float(getattr(node, "_saved_alpha", 0)) != 1.0 or float(getattr(node, "_saved_beta", 0)) != 1.0:
                continue
            x_name = "_saved_mat1"
        elif kind == "MmBackward0" and len(nf) == 2:
            bias_node, w_t = None, nf[1][0]
            x_name = "_saved_self"
        else:
            continue
        if w_t is None or type(w_t).__name__ != "TBackward0" or refs.get(w_t, 0) != 1:
            continue
        w_acc = w_t.next_functions[0][0]
        w = _param_of(w_acc)
        if w is None or id(w) not in index or refs.get(w_acc, 0) != 1 or w.ndim != 2:
            continue
        try:
            x = getattr(node, x_name)
        except RuntimeError:  # saved tensor freed or modified in place: leave to the generic path
            continue
        if x is None or x.ndim != 2 or x.shape[1] != w.shape[1]:
            continue
        b = _param_of(bias_node)
        bias = None
        if b is not None and id(b) in index and refs.get(bias_node, 0) == 1 and b.ndim == 1 and b.shape[0] == w.shape[0]:
            bias = index[id(b)]
        elif bias_node is not None:
            continue  # a bias that is not a plain parameter of ours: keep the generic path
        sites.append(LinearSite(GradientEdge(node, 0), x.detach(), index[id(w)], bias))
        covered.add(index[id(w)])
        if bias is not None:
            covered.add(bias)
    others = [i for i in range(len(params)) if i not in covered]
    return sites, others


@dataclass
class TaskRoots:
    """Where each task's gradient starts: ``edges[t]`` (None when task t reaches no parameter)
    and the scalar cotangent ``scale[t]`` it receives from the loss vector."""

    edges: list[GradientEdge | None]
    scale: torch.Tensor


def task_roots(losses: torch.Tensor) -> TaskRoots | None:
    """Per-task roots of a loss vector built as ``stack(l_1..l_T)`` then element-wise operations.

    Returns None when the loss vector has another structure (the caller then differentiates the
    whole vector at once).
    """
    n_tasks = losses.shape[0]
    node = losses.grad_fn
    while node is not None and type(node).__name__ != "StackBackward0":
        inputs = [nxt for nxt, _ in node.next_functions if nxt is not None]
        if len(inputs) != 1:
            return None
        node = inputs[0]
    if node is None or len(node.next_functions) != n_tasks or int(getattr(node, "_saved_dim", -1)) != 0:
        return None
    if losses.grad_fn is node:
        scale = torch.ones(n_tasks, dtype=losses.dtype, device=losses.device)
    else:
        eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
        (chain,) = torch.autograd.grad(losses, GradientEdge(node, 0), grad_outputs=eye, retain_graph=True, is_grads_batched=True)
        if chain.shape != (n_tasks, n_tasks) or (chain - torch.diag(torch.diagonal(chain))).abs().max() > 0:
            return None
        scale = torch.diagonal(chain).clone()
    edges = [GradientEdge(nxt, nr) if nxt is not None else None for nxt, nr in node.next_functions]
    return TaskRoots(edges, scale)


@dataclass
class HeadInput:
    """Task t's head reads ``z`` through one linear layer ``y_t = z W_t^T (+ b_t)``.

    Attributes:
        edge: gradient edge of ``y_t`` (differentiating gives ``dY_t``, (n, h_t)).
        weight: ``W_t`` (h_t, k).
    """

    edge: GradientEdge
    weight: torch.Tensor


def linear_head_inputs(roots: TaskRoots, z: torch.Tensor) -> list[HeadInput | None] | None:
    """For each task, the single linear layer through which its head reads ``z`` (2-D).

    Then ``dL_t/dz = dY_t W_t``, so the gradients of ``z`` can be handled in factored form.
    None when some task reads ``z`` otherwise (several times, through another operation, or
    through a weight used elsewhere); a task that does not reach ``z`` gets None in the list.
    """
    if z.ndim != 2 or z.grad_fn is None:
        return None
    target = (z.grad_fn, z.output_nr)
    out: list[HeadInput | None] = []
    for edge in roots.edges:
        if edge is None:
            out.append(None)
            continue
        order, refs = _walk([edge.node], {z.grad_fn})
        readers = [(n, i) for n in order for i, (nxt, nr) in enumerate(n.next_functions) if (nxt, nr) == target]
        if not readers:
            out.append(None)
            continue
        if len(readers) != 1:
            return None
        node, slot = readers[0]
        kind = type(node).__name__
        if kind == "AddmmBackward0" and slot == 1:
            w_t = node.next_functions[2][0]
        elif kind == "MmBackward0" and slot == 0:
            w_t = node.next_functions[1][0]
        else:
            return None
        if kind == "AddmmBackward0" and (float(getattr(node, "_saved_alpha", 0)) != 1.0 or float(getattr(node, "_saved_beta", 0)) != 1.0):
            return None
        if w_t is None or type(w_t).__name__ != "TBackward0" or refs.get(w_t, 0) != 1:
            return None
        weight = _param_of(w_t.next_functions[0][0])
        if weight is None or weight.ndim != 2 or weight.shape[1] != z.shape[1]:
            return None
        out.append(HeadInput(GradientEdge(node, 0), weight))
    return out
