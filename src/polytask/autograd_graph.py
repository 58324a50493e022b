"""Reading the autograd graph of one training step (no computation, only structure).

Three facts let the gradient engine skip work that a generic Jacobian would do:

- *per-task roots*: when the loss vector is ``stack(l_1, ..., l_T)`` followed only by
  element-wise operations (the trainer's ``* alpha``), task t's gradient starts at the t-th input
  of the stack, so its head can be differentiated alone (T cheap passes instead of one pass over
  all heads for every task);
- *linear readers*: when the heads read the representation ``z`` through linear layers whose
  rows belong to the tasks (one fused bank for all heads, or one layer per head), every task's
  gradient of ``z`` is ``dY_t W_t`` and one backward pass gives all the ``dY_t``;
- *linear sites*: for a ``Linear`` layer ``y = x W^T + b`` whose weight is used nowhere else, the
  per-task gradient of ``W`` is ``dY_t^T x``. The layer's input ``x`` is already saved in the
  graph, so the engine only needs the per-task output gradients ``dY_t``; Gramian entries and
  the combined gradient follow from ``x`` and ``dY`` without forming the T per-task weight
  gradients.

- *element-wise chains*: when a linear site's output reaches ``z`` only through element-wise
  activations (ReLU, GELU, tanh, dropout...), the Jacobian from ``y`` to ``z`` is diagonal, so
  ``dY_t = D * dZ_t`` with ``D`` the gradient of ``sum(z)`` at ``y`` (one plain pass), and a
  task's ``dY_t`` needs no pass of its own.

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


#: Autograd nodes of unary element-wise functions: each output entry depends on the same entry
#: of the one input, so their Jacobian is diagonal. ``MulBackward0`` / ``MulBackward1`` count only
#: with one differentiable input (a mask or a constant factor, as dropout applies).
ELEMENTWISE_NODES = frozenset({
    "ReluBackward0", "LeakyReluBackward0", "GeluBackward0", "SiluBackward0", "TanhBackward0", "SigmoidBackward0",
    "EluBackward0", "CeluBackward0", "SoftplusBackward0", "HardtanhBackward0", "HardswishBackward0",
    "HardsigmoidBackward0", "MishBackward0", "MulBackward0", "MulBackward1",
})


def elementwise_chain(top: torch.Tensor, edge: GradientEdge, max_nodes: int = 16) -> list[str] | None:
    """The kinds of the nodes from ``top`` down to the output ``y`` behind ``edge`` (empty when
    ``top`` is ``y``) when they are all element-wise functions (:data:`ELEMENTWISE_NODES`, each
    with one differentiable input), so that ``d top / d y`` is diagonal; else None. The caller
    checks that shapes agree (a broadcast would make the Jacobian non-diagonal)."""
    node, nr = top.grad_fn, top.output_nr
    kinds: list[str] = []
    for _ in range(max_nodes + 1):
        if node is edge.node and nr == edge.output_nr:
            return kinds
        if node is None or nr != 0 or type(node).__name__ not in ELEMENTWISE_NODES:
            return None
        inputs = [(nxt, i) for nxt, i in node.next_functions if nxt is not None]
        if len(inputs) != 1:
            return None
        kinds.append(type(node).__name__)
        node, nr = inputs[0]
    return None


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
class LinearReader:
    """A linear layer through which the heads read ``z``: ``Y = z W^T (+ b)``, with each row of
    ``W`` (each column of ``Y``) belonging to one task.

    Attributes:
        edge: gradient edge of ``Y`` (differentiating gives ``dY``, (n, H)).
        weight: ``W`` (H, k).
        row_owner: the task of each row of ``W``.
    """

    edge: GradientEdge
    weight: torch.Tensor
    row_owner: list[int]


def _linear_weight(node: Node, slot: int) -> tuple[Node, torch.Tensor] | None:
    """For a plain matrix product reading its input at ``slot``, the weight's accumulation node
    and the weight (a 2-D leaf used through ``W^T``)."""
    kind = type(node).__name__
    if kind == "AddmmBackward0" and slot == 1:
        if float(getattr(node, "_saved_alpha", 0)) != 1.0 or float(getattr(node, "_saved_beta", 0)) != 1.0:
            return None
        w_t = node.next_functions[2][0]
    elif kind == "MmBackward0" and slot == 0:
        w_t = node.next_functions[1][0]
    else:
        return None
    if w_t is None or type(w_t).__name__ != "TBackward0":
        return None
    acc = w_t.next_functions[0][0]
    weight = _param_of(acc)
    if weight is None or weight.ndim != 2:
        return None
    return w_t, weight


def _row_owner(rows: int, owned: list[tuple[int, int, int]]) -> list[int] | None:
    """The task of each of ``rows`` rows from ``(task, start, stop)`` blocks; None unless every
    row belongs to exactly one task."""
    owner = [-1] * rows
    for task, start, stop in owned:
        for r in range(start, stop):
            if r >= rows or owner[r] != -1:
                return None
            owner[r] = task
    return None if -1 in owner else owner


def linear_readers(losses: torch.Tensor, z: torch.Tensor, owners: dict[int, list[tuple[int, int, int]]]) -> list[LinearReader] | None:
    """The linear layers through which the losses read ``z`` (2-D), when that is the only way
    they read it and every row of those layers' weights belongs to one task.

    ``owners`` maps ``id(W)`` of task parameters to ``(task, start, stop)``: task ``task`` owns
    rows ``start:stop`` of ``W`` (a whole per-task head layer, or a block of a fused head bank).
    Since a task's parameters belong to it alone, column block ``t`` of ``Y`` reaches task t's
    loss only, so ``dL_t/dz = dY[:, rows_t] W[rows_t]``, where ``dY`` is the gradient of
    ``sum_t L_t``: one backward pass gives every task's gradient of ``z`` in factored form.
    None when some reader is another operation, a weight is used elsewhere or a row has no
    owner (the caller then takes the generic path).
    """
    if z.ndim != 2 or z.grad_fn is None or losses.grad_fn is None:
        return None
    target = (z.grad_fn, z.output_nr)
    order, refs = _walk([losses.grad_fn], {z.grad_fn})
    readers = [(n, i) for n in order for i, (nxt, nr) in enumerate(n.next_functions) if (nxt, nr) == target]
    if not readers:
        return None
    out: list[LinearReader] = []
    for node, slot in readers:
        found = _linear_weight(node, slot)
        if found is None:
            return None
        w_t, weight = found
        if refs.get(w_t, 0) != 1 or refs.get(w_t.next_functions[0][0], 0) != 1 or weight.shape[1] != z.shape[1]:
            return None
        owner = _row_owner(weight.shape[0], owners.get(id(weight), []))
        if owner is None:
            return None
        out.append(LinearReader(GradientEdge(node, 0), weight, owner))
    return out
