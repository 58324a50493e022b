"""Per-task gradient information: the Jacobian of the loss vector with respect to parameters.

- :func:`per_task_gradients`: ``J[t] = d L_t / d theta`` (flattened over ``params``), computed
  with one batched vector-Jacobian product (``is_grads_batched``): the rows of the identity are
  pushed back through the graph together rather than in T separate backward passes.
- :func:`shared_gradients` (the gradient engine, exact mode): the same information for the
  shared parameters in factored form (:class:`SharedGradients`): the T x T Gramian
  ``G = J J^T``, ``J^T w`` applied without another backward pass, and ``J`` itself on demand.
- :func:`representation_step` (representation mode): the per-task gradients of the shared
  representation ``z`` (:class:`RepresentationGradients`), factored through the heads' first
  linear layers when that is cheaper.

Task-specific parameters receive the gradient of their own task's loss in every path. A task's
parameters belong to it alone (the contract of :meth:`MultiTaskNetwork.task_parameters`), so
``d(sum_s L_s)/d theta_t = dL_t/d theta_t``: one backward pass of the summed losses gives every
task its own gradient. A task parameter may be a view of a larger leaf (the banks of
:class:`polytask.models.heads.FusedHeads`): :func:`parameter_source` finds the leaf, gradients
are taken with respect to the leaf and each view receives its own rows.
See docs/GRADIENT_ENGINE.md for the method and measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polytask.autograd_graph import (
    LinearReader, LinearSite, elementwise_chain, linear_readers, linear_sites, reaches_any, task_roots,
)

def widen(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 when autocast made it half precision (Gramians are float32 or wider)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


#: Where a parameter lies in its leaf: rows ``start:stop`` of the first dimension, or (when
#: ``squeeze``) the single index ``start``.
Region = tuple[int, int, bool]


def parameter_source(p: torch.Tensor) -> tuple[torch.Tensor, Region | None]:
    """The leaf tensor autograd accumulates into for parameter ``p``, and ``p``'s region in it:
    ``(p, None)`` for an ordinary parameter; for a view of a leaf parameter along its first
    dimension (a fused head bank's task rows) the leaf and the rows."""
    base = p._base
    if base is None or not isinstance(base, nn.Parameter):
        return p, None
    if not base.is_contiguous() or base.ndim == 0:
        raise ValueError("a task parameter is a view of a non-contiguous tensor")
    row = base.stride(0)
    offset = p.storage_offset() - base.storage_offset()
    start = offset // row
    if p.ndim == base.ndim and tuple(p.shape[1:]) == tuple(base.shape[1:]) and offset % row == 0:
        return base, (start, start + p.shape[0], False)
    if p.ndim == base.ndim - 1 and tuple(p.shape) == tuple(base.shape[1:]) and offset % row == 0:
        return base, (start, start + 1, True)
    raise ValueError("a task parameter is a view that is not a block of rows of its parameter")


def cut(g: torch.Tensor, region: Region | None, batched: bool = False) -> torch.Tensor:
    """The part of ``g`` (shaped like a leaf, with a leading batch dimension when ``batched``)
    that a parameter with ``region`` covers."""
    if region is None:
        return g
    start, stop, squeeze = region
    if batched:
        return g[:, start] if squeeze else g[:, start:stop]
    return g[start] if squeeze else g[start:stop]


def _tiles(spans: list[tuple[int, int]], rows: int) -> bool:
    """Whether the sorted row ranges ``spans`` cover ``0:rows`` exactly once."""
    end = 0
    for start, stop in spans:
        if start != end:
            return False
        end = stop
    return end == rows


class _Leaves:
    """The distinct leaves behind ``params`` (each once, in order) and each parameter's place."""

    def __init__(self, params: Sequence[torch.Tensor]) -> None:
        self.params = list(params)
        self.leaves: list[torch.Tensor] = []
        self.where: list[tuple[int, Region | None]] = []
        index: dict[int, int] = {}
        spans: list[list[tuple[int, int]]] = []  # per leaf: the rows each parameter covers
        for p in self.params:
            base, region = parameter_source(p)
            if id(base) not in index:
                index[id(base)] = len(self.leaves)
                self.leaves.append(base)
                spans.append([])
            self.where.append((index[id(base)], region))
            spans[index[id(base)]].append(region[:2] if region is not None else (0, base.shape[0] if base.ndim else 1))
        #: True when the parameters cover every leaf exactly once (each row of a bank by one view)
        self.partition = all(_tiles(sorted(s), leaf.shape[0] if leaf.ndim else 1) for s, leaf in zip(spans, self.leaves))

    def per_param(self, grads: Sequence[torch.Tensor | None], batched: bool = False) -> list[torch.Tensor | None]:
        """Each parameter's gradient from the leaves' gradients."""
        return [None if grads[i] is None else cut(grads[i], region, batched) for i, region in self.where]  # type: ignore[arg-type]

    def add(self, grads: Sequence[torch.Tensor | None]) -> None:
        """Add the leaves' gradients into the parameters' gradients: leaf by leaf when the
        parameters partition the leaves (the same sums, in fewer operations), else each
        parameter its rows."""
        if self.partition:
            for leaf, g in zip(self.leaves, grads):
                _add_grad(leaf, g)
        else:
            add_to_gradients(self.params, self.per_param(grads))


def _add_grad(p: torch.Tensor, g: torch.Tensor | None) -> None:
    """Add ``g`` into the gradient of parameter ``p`` (into its rows of the leaf for a view)."""
    if g is None:
        return
    base, region = parameter_source(p)
    g = g.detach().to(base.dtype)
    if region is None:
        if base.grad is None:
            base.grad = g.clone()
        else:
            base.grad.add_(g)
        return
    if base.grad is None:
        base.grad = torch.zeros_like(base)
    cut(base.grad, region).add_(g)


def add_to_gradients(params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> None:
    """``p.grad += g`` for each pair (views of a leaf add into their rows)."""
    for p, g in zip(params, grads):
        _add_grad(p, g)


def parameter_gradient(p: torch.Tensor) -> torch.Tensor | None:
    """The gradient accumulated for parameter ``p`` (its rows of the leaf's for a view)."""
    base, region = parameter_source(p)
    return None if base.grad is None else cut(base.grad, region)


def row_owners(groups: Sequence[Sequence[torch.Tensor]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For each leaf behind the parameters of ``groups``, the (rows,) count of groups that
    cover each row of it (a partition of the leaves: every count is 1)."""
    counts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for group in groups:
        for p in group:
            base, region = parameter_source(p)
            rows = base.shape[0] if base.ndim else 1
            entry = counts.setdefault(id(base), (base, torch.zeros(rows, dtype=torch.long)))
            start, stop = (0, rows) if region is None else region[:2]
            entry[1][start:stop] += 1
    return list(counts.values())


def per_task_gradients(
    losses: torch.Tensor, params: Sequence[nn.Parameter] | Sequence[torch.Tensor], retain_graph: bool = True
) -> torch.Tensor:
    """The (T, P) Jacobian of ``losses`` (T,) with respect to ``params`` (P entries in all).

    A parameter that a loss does not reach contributes zeros.
    """
    params = list(params)
    n_tasks = losses.shape[0]
    if not params:
        return losses.new_zeros((n_tasks, 0))
    leaves = _Leaves(params)
    eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(
        losses, leaves.leaves, grad_outputs=eye, retain_graph=retain_graph, allow_unused=True, is_grads_batched=True
    )
    return _flat(leaves.per_param(grads, batched=True), params, n_tasks)


def per_task_gradient_norms(losses: torch.Tensor, params: Sequence[torch.Tensor], representation: torch.Tensor | None = None,
                            task_params: Sequence[Sequence[torch.Tensor]] = (), layout: "TaskLayout | None" = None,
                            factors: "HeadFactors | None" = None) -> torch.Tensor:
    """``||dL_t/dparams||`` for each task (T,), without forming the (T, P) Jacobian: the
    diagonal of the engine's Gramian (as :class:`SharedGradients` factors it, without the
    off-diagonal terms), so a linear layer's weight costs ``||dY_t^T x||^2 = <dY_t, (x x^T) dY_t>``
    from its output gradients and saved input.

    The per-task output gradients come from one batched product from the losses or, when the
    ``params`` reach the losses only through ``representation`` and the heads read it through
    linear layers owned by the tasks (``task_params``), from the factored gradients of ``z``
    (one plain pass through the heads, :func:`head_factors`, or ``factors`` when the caller has
    them; ``layout``: the task parameters already resolved). A linear layer whose output reaches
    ``z`` through element-wise activations only gets ``dY_t = D * dZ_t`` (:func:`_diagonal_norms`);
    other parameters, ``dZ_t`` pushed back from ``z``. The parameters must be leaves; no ``.grad``
    is touched and the graph is kept."""
    params = list(params)
    n_tasks = losses.shape[0]
    if not params:
        return losses.new_zeros(n_tasks)
    z = representation
    if factors is None and z is not None and z.ndim == 2 and z.grad_fn is not None and task_params:
        if not reaches_any([losses.grad_fn], params, stop=z.grad_fn):  # type: ignore[list-item]
            factors = head_factors(losses, z, task_params, layout, own_gradients=False)
    squared = losses.new_zeros(n_tasks)
    if factors is not None:
        assert z is not None
        sites, others = linear_sites(z.grad_fn, params)
        pending = []
        for site in sites:
            part = _diagonal_norms(z, site, params[site.weight].shape[0], factors)
            if part is None:
                pending.append(site)
            else:
                squared += part
        sites = pending
        inputs = [s.edge for s in sites] + [params[i] for i in others]
        grads = _trunk_gradients(z, factors.dense(), inputs, [params[i] for i in others]) if inputs else []
    else:
        sites, others = linear_sites(losses.grad_fn, params)
        inputs = [s.edge for s in sites] + [params[i] for i in others]
        eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
        grads = torch.autograd.grad(losses, inputs, grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True)
    for site, dy in zip(sites, grads[: len(sites)]):
        if dy is not None:
            squared += _site_squared_norms(site, dy, params[site.weight].shape[0], site.bias is not None)
    for g in grads[len(sites):]:
        if g is not None:
            squared += g.reshape(n_tasks, -1).pow(2).sum(1)
    return squared.sqrt()


def _diagonal_norms(z: torch.Tensor, site: LinearSite, d_out: int, factors: "HeadFactors") -> torch.Tensor | None:
    """``||dY_t^T x||^2`` (plus the bias term) for a layer whose output ``y`` reaches ``z`` only
    through element-wise functions, with one output row per task in ``factors``
    (:func:`_norms_through_diagonal`); None when the layer does not qualify (the caller then
    takes the batched pass)."""
    if not factors.one_row_each():
        return None
    found = _site_diagonal(z, site, d_out)
    return None if found is None else _norms_through_diagonal(site.x, found[0], factors, site.bias is not None)


def _site_diagonal(z: torch.Tensor, site: LinearSite, d_out: int) -> tuple[torch.Tensor | None] | None:
    """``(D,)`` with ``D = d sum(z) / dy`` (None: ``z`` is ``y``) for a layer whose output reaches
    ``z`` through element-wise functions only, else None (as when the direct product
    ``T m d_out d_in`` would be cheaper: ``m > d_in``)."""
    m, d_in = site.x.shape
    if m > d_in or z.shape != (m, d_out):
        return None
    kinds = elementwise_chain(z, site.edge)
    return None if kinds is None else (_diagonal(z, site, kinds),)


def _norms_through_diagonal(x: torch.Tensor, diag: torch.Tensor | None, factors: "HeadFactors", bias: bool) -> torch.Tensor:
    """With one output row per task (``dZ_t = dy_t w_t^T``, rows in the readers' order, put in
    task order at the end), ``dY_t = D * (dy_t w_t^T)`` and

        ||dY_t^T x||^2 + ||sum_i dY_t[i]||^2 = sum_ij K_ij dy_ti dy_tj S_tij,
        K = x x^T (+ 1 with a bias),   S_tij = sum_k D_ik D_jk w_tk^2,

    (the bias's gradient is ``dY_t^T 1``: a constant 1 appended to every row of ``x``), which costs
    ``T m^2 d_out`` multiplies and never pushes T gradients through the activations."""
    x, dy, w = widen(x), factors.dy.T, factors.weight  # (m, d_in), (T, m), (T, d_out)
    inner = x @ x.T
    if bias:
        inner += 1.0
    return factors.per_task((_masked_inner(diag, w) * inner * (dy[:, :, None] * dy[:, None, :])).sum(dim=(1, 2)))


def backward_with_gradient_norms(losses: torch.Tensor, z: torch.Tensor, params: Sequence[torch.Tensor],
                                 layout: "TaskLayout") -> torch.Tensor | None:
    """``losses.sum().backward()``, returning ``||d losses_t / d params||`` (T,) from that one
    pass; or None, with nothing run, unless ``params`` are one linear layer (weight, and bias if
    any) whose output reaches ``z`` through element-wise functions only and the heads read ``z`` through
    linear layers with one output row per task (``layout``: the task parameters resolved).
    The layers' inputs and ``D`` are taken from the graph before the pass frees it; hooks on the
    heads' linear layers record their output gradients ``dy`` during it, and the norms follow
    as in :func:`_norms_through_diagonal`. The caller guarantees that ``params`` reach the
    losses only through ``z``."""
    n_tasks = losses.shape[0]
    readers = linear_readers(losses, z, layout.owners)
    if readers is None or sum(r.weight.shape[0] for r in readers) != n_tasks:
        return None
    owner, one_per_task = layout.owner_index(readers, n_tasks, z.device)
    if not (one_per_task or one_row_per_task(owner, n_tasks)):
        return None
    sites, others = linear_sites(z.grad_fn, params)
    if others or len(sites) != 1:  # an element-wise chain down from z reaches one layer at most
        return None
    (site,) = sites
    found = _site_diagonal(z, site, params[site.weight].shape[0])
    if found is None:
        return None
    recorded: list[torch.Tensor | None] = [None] * len(readers)

    def recorder(k: int):  # type: ignore[no-untyped-def]
        def hook(grad_outputs: tuple[torch.Tensor | None, ...]) -> None:
            recorded[k] = grad_outputs[0]
        return hook

    handles = [r.edge.node.register_prehook(recorder(k)) for k, r in enumerate(readers)]
    try:
        losses.sum().backward()
    finally:
        for handle in handles:
            handle.remove()
    factors = factors_of(readers, recorded, z, n_tasks, layout)
    return _norms_through_diagonal(site.x, found[0], factors, site.bias is not None).sqrt()


def _diagonal(z: torch.Tensor, site: LinearSite, kinds: list[str]) -> torch.Tensor | None:
    """``D = d sum(z) / dy`` (m, d_out) along an element-wise chain of ``kinds``; None for the
    identity (``z`` is ``y``)."""
    if not kinds:
        return None
    if all(k == "ReluBackward0" for k in kinds):
        return torch.sign(widen(z.detach()))  # relu'(y) = 1 exactly where the output (>= 0) is positive; sign is cheaper than > 0
    (diag,) = torch.autograd.grad([z], [site.edge], grad_outputs=[torch.ones_like(z)], retain_graph=True)
    return widen(diag.detach())


def _masked_inner(diag: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
    """``S_tij = sum_k D_ik D_jk w_tk^2`` (T, m, m) as one product ``(D * w_t^2)_t D^T``
    ((T m, d_out) by (d_out, m)): measured as fast as or faster than T products of the scaled
    copies ``D * w_t`` with themselves, and than one product of the row pairs ``D_i * D_j`` with
    ``w^2``, at every T from 3 to 50 (m = 32, d_out = 512; m = 64, d_out = 64)."""
    n_tasks, d_out = w.shape
    if diag is None:
        return (w * w).sum(1)[:, None, None]
    m = diag.shape[0]
    scaled = diag[None] * (w * w)[:, None, :]  # (T, m, d_out)
    return (scaled.view(n_tasks * m, d_out) @ diag.T).view(n_tasks, m, m)


def _site_squared_norms(site: LinearSite, dy: torch.Tensor, d_out: int, bias: bool) -> torch.Tensor:
    """``||dY_t^T x||^2`` (plus ``||sum_i dY_t[i]||^2`` for the bias) for each task, from the
    per-task output gradients ``dy`` (T, m, d_out): ``sum((x x^T dY_t) * dY_t)`` when that is
    cheaper than forming the T weight gradients."""
    x = site.x
    n_tasks, (m, d_in) = dy.shape[0], x.shape
    if m * m * (d_in + n_tasks * d_out) <= n_tasks * m * d_out * d_in:
        out = (torch.matmul(x @ x.T, dy) * dy).sum(dim=(1, 2))
    else:
        out = torch.matmul(dy.transpose(1, 2), x).reshape(n_tasks, -1).pow(2).sum(1)
    return out + dy.sum(dim=1).pow(2).sum(1) if bias else out


def accumulate_flat_gradient(params: Sequence[nn.Parameter], vector: torch.Tensor) -> None:
    """Add the flat ``vector`` (P,) into the ``.grad`` of ``params``, in order."""
    offset = 0
    for p in params:
        n = p.numel()
        _add_grad(p, vector[offset : offset + n].view_as(p).to(p.dtype))
        offset += n
    if offset != vector.numel():
        raise ValueError(f"gradient vector has {vector.numel()} entries for {offset} parameters")


# ----------------------------------------------------------------------------------------------
# The gradient engine: per-task gradient information once per step, as a T x T Gramian.
# ----------------------------------------------------------------------------------------------


def _flat(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor], rows: int) -> torch.Tensor:
    """(rows, P) from per-parameter batched gradients (None: zeros)."""
    if not params:
        return torch.zeros((rows, 0))
    ref = params[0]
    return torch.cat(
        [(g if g is not None else ref.new_zeros((rows, *p.shape))).reshape(rows, -1) for g, p in zip(grads, params)], dim=1
    )


def accumulate_own_task_gradients(losses: torch.Tensor, task_params: Sequence[Sequence[torch.Tensor]]) -> None:
    """Add ``dL_t/dtheta_t`` to the gradient of each task's own parameters (graph kept): one
    backward pass of ``sum_t L_t`` (each task's parameters are its own, see the module docstring)."""
    flat = [p for ps in task_params for p in ps]
    if not flat:
        return
    leaves = _Leaves(flat)
    grads = torch.autograd.grad(losses.sum(), leaves.leaves, retain_graph=True, allow_unused=True)
    leaves.add(grads)


def one_row_per_task(owner: torch.Tensor, n_tasks: int) -> bool:
    """Whether ``owner`` (the task of each head row) gives every task exactly one row."""
    return owner.shape[0] == n_tasks and bool((torch.bincount(owner, minlength=n_tasks) == 1).all())


class HeadFactors:
    """``dL_t/dz = dY_t W_t`` for heads that read ``z`` (n, k) through linear layers: ``dy``
    (n, H) the output gradients of those layers side by side, ``weight`` (H, k) their weights
    one under the other, ``owner`` (H,) the task each row belongs to."""

    def __init__(self, dy: torch.Tensor, weight: torch.Tensor, owner: torch.Tensor, n_tasks: int,
                 one_per_task: bool | None = None) -> None:
        self.dy, self.weight, self.owner, self.n_tasks = widen(dy), widen(weight), owner, n_tasks
        #: Whether row t is task t's (one output each, in task order); given by a caller that
        #: knows it without looking at ``owner``.
        self.one_per_task = (dy.shape[1] == n_tasks and bool((owner == torch.arange(n_tasks, device=owner.device)).all())
                             if one_per_task is None else one_per_task)

    def blocks(self) -> torch.Tensor:
        """(T, H): 1 where row h belongs to task t."""
        out = self.dy.new_zeros((self.n_tasks, self.dy.shape[1]))
        out[self.owner, torch.arange(self.dy.shape[1], device=self.dy.device)] = 1.0
        return out

    def gramian(self) -> torch.Tensor:
        """``G[s, t] = <dY_s W_s, dY_t W_t> = sum((dY_s^T dY_t) * (W_s W_t^T))``."""
        inner = (self.dy.T @ self.dy) * (self.weight @ self.weight.T)  # (H, H)
        if self.one_per_task:
            return inner
        b = self.blocks()
        return b @ inner @ b.T

    def dense(self) -> torch.Tensor:
        """(T, n, k): each task's gradient of ``z``."""
        if self.one_per_task:
            return self.dy.T[:, :, None] * self.weight[:, None, :]
        return torch.einsum("nh,th,hk->tnk", self.dy, self.blocks(), self.weight)

    def one_row_each(self) -> bool:
        """Whether every task owns exactly one row (in any order)."""
        return self.one_per_task or one_row_per_task(self.owner, self.n_tasks)

    def per_task(self, rows: torch.Tensor) -> torch.Tensor:
        """Values (H, ...) of the rows, put in task order when each task owns one row."""
        return rows if self.one_per_task else torch.zeros_like(rows).index_copy_(0, self.owner, rows)

    def total(self) -> torch.Tensor:
        """``sum_t dY_t W_t`` (n, k): the gradient of ``z`` of the losses whose factors these are."""
        return self.dy @ self.weight

    def direction(self, w: torch.Tensor) -> torch.Tensor:
        """``sum_t w_t dY_t W_t`` (n, k)."""
        return (self.dy * (w if self.one_per_task else w[self.owner])) @ self.weight

    def cost(self) -> tuple[int, int]:
        """(factored, dense): rough multiply counts of the Gramian in each form."""
        (n, h), k = self.dy.shape, self.weight.shape[1]
        return h * h * (n + k), n * k * (h + self.n_tasks * self.n_tasks)


class TaskLayout:
    """The task parameters resolved once (their leaves, and the rows of each 2-D leaf that each
    task owns), for callers that pass the same parameters at every step."""

    def __init__(self, task_params: Sequence[Sequence[torch.Tensor]]) -> None:
        self.ids = _ids(task_params)
        self.flat = [p for ps in task_params for p in ps]
        self.leaves = _Leaves(self.flat)
        self.owners: dict[int, list[tuple[int, int, int]]] = {}
        self._owner_index: dict[tuple[object, ...], tuple[torch.Tensor, bool]] = {}
        for t, ps in enumerate(task_params):
            for p in ps:
                base, region = parameter_source(p)
                if base.ndim == 2 and (region is None or not region[2]):
                    start, stop = (0, base.shape[0]) if region is None else region[:2]
                    self.owners.setdefault(id(base), []).append((t, start, stop))

    @staticmethod
    def of(task_params: Sequence[Sequence[torch.Tensor]], known: "TaskLayout | None" = None) -> "TaskLayout":
        """``known`` when it describes ``task_params``, else a new layout."""
        return known if known is not None and known.ids == _ids(task_params) else TaskLayout(task_params)

    def owner_index(self, readers: Sequence[LinearReader], n_tasks: int, device: torch.device) -> tuple[torch.Tensor, bool]:
        """The task of each row of the readers' weights stacked, as a (H,) long tensor, and
        whether row t is task t's; made once per set of readers (the rows of a weight belong to
        the tasks by this layout, so they do not change between steps)."""
        key = (*(id(r.weight) for r in readers), n_tasks, device)
        known = self._owner_index.get(key)
        if known is None:
            rows = [t for r in readers for t in r.row_owner]
            known = (torch.tensor(rows, dtype=torch.long, device=device), rows == list(range(n_tasks)))
            self._owner_index[key] = known
        return known


def _ids(task_params: Sequence[Sequence[torch.Tensor]]) -> tuple[tuple[int, ...], ...]:
    return tuple(tuple(map(id, ps)) for ps in task_params)


def head_factors(losses: torch.Tensor, z: torch.Tensor, task_params: Sequence[Sequence[torch.Tensor]],
                 layout: TaskLayout | None = None, own_gradients: bool = True) -> HeadFactors | None:
    """The factored gradients of ``z`` when the heads read it through linear layers whose rows
    belong to the tasks (:func:`polytask.autograd_graph.linear_readers`), else None. One
    backward pass of ``sum_t L_t`` gives every layer's ``dY`` and, as a side effect, each task's
    own parameters their gradient (added to ``.grad``; not with ``own_gradients=False``).
    ``layout``: the task parameters already resolved (:class:`TaskLayout`, trusted to describe
    ``task_params``: a caller resolves it once with :meth:`TaskLayout.of`)."""
    layout = layout if layout is not None else TaskLayout(task_params)
    leaves, owners = layout.leaves, layout.owners
    readers = linear_readers(losses, z, owners)
    if readers is None:
        return None
    wanted = [r.edge for r in readers] + (leaves.leaves if own_gradients else [])
    grads = torch.autograd.grad(losses.sum(), wanted, retain_graph=True, allow_unused=True)
    if own_gradients:
        leaves.add(grads[len(readers):])
    return factors_of(readers, grads[: len(readers)], z, int(losses.shape[0]), layout)


def factors_of(readers: Sequence[LinearReader], dys: Sequence[torch.Tensor | None], z: torch.Tensor, n_tasks: int,
               layout: TaskLayout) -> HeadFactors:
    """:class:`HeadFactors` from the readers of ``z`` and their output gradients ``dys`` (None: no
    gradient reached that layer)."""
    dys = [g.detach() if g is not None else z.new_zeros((z.shape[0], r.weight.shape[0])) for g, r in zip(dys, readers)]
    owner, one_per_task = layout.owner_index(readers, n_tasks, z.device)
    dy = dys[0] if len(dys) == 1 else torch.cat(dys, 1)
    weight = readers[0].weight if len(readers) == 1 else torch.cat([r.weight for r in readers])
    return HeadFactors(dy, weight.detach(), owner, n_tasks, one_per_task=one_per_task)


def representation_gradients(
    losses: torch.Tensor,
    representation: torch.Tensor,
    task_params: Sequence[Sequence[torch.Tensor]],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-task gradients of the shared representation ``z``: a (T, *z.shape) tensor.

    As a side effect each task's own parameters (``task_params[t]``) receive the gradient of
    that task's loss in ``.grad``. Heads that read ``z`` through linear layers give the result
    from one backward pass (:func:`head_factors`); a loss vector that is a stack of per-task
    losses, T cheap passes through the heads; otherwise one batched vector-Jacobian product
    covers all tasks. The graph is kept. ``out``, a (T, *z.shape) buffer, receives the result
    when given (a caller reusing one buffer across steps avoids allocating T copies of ``z``).
    """
    z = representation
    factors = head_factors(losses, z, task_params)
    if factors is not None:
        return factors.dense()
    n_tasks = losses.shape[0]
    roots = task_roots(losses)
    if roots is not None:
        if out is None or out.shape != (n_tasks, *z.shape) or out.dtype != z.dtype or out.device != z.device:
            out = z.new_empty((n_tasks, *z.shape))
        for t, (edge, scale) in enumerate(zip(roots.edges, roots.scale)):
            params = list(task_params[t])
            if edge is None:
                out[t].zero_()
                continue
            leaves = _Leaves(params)
            grads = torch.autograd.grad([edge], [z, *leaves.leaves], grad_outputs=[scale.reshape(())], retain_graph=True,
                                        allow_unused=True)
            if grads[0] is None:
                out[t].zero_()
            else:
                out[t].copy_(grads[0])
            add_to_gradients(params, leaves.per_param(grads[1:]))
        return out
    flat = [p for ps in task_params for p in ps]
    leaves = _Leaves(flat)
    eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(losses, [z, *leaves.leaves], grad_outputs=eye, retain_graph=True, allow_unused=True,
                                is_grads_batched=True)
    gz = grads[0] if grads[0] is not None else z.new_zeros((n_tasks, *z.shape))
    own = [None if g is None else g.sum(0) for g in grads[1:]]  # row t is task t's own gradient, zero elsewhere
    leaves.add(own)
    return gz


class RepresentationGradients:
    """The per-task gradients of ``z`` at one step: ``Z[t] = dL_t/dz``, flattened to (T, n k).

    Held either as a dense (T, *z.shape) tensor or, when each head reads ``z`` through linear
    layers, factored (:class:`HeadFactors`): the Gramian is ``sum((dY^T dY) * (W W^T))`` summed
    over each task's rows and the combined gradient ``sum_t w_t dY_t W_t`` is one matrix
    product, so the T gradients of ``z`` (T x n x k) are never formed.
    """

    def __init__(self, z: torch.Tensor, dense: torch.Tensor | None = None, factors: HeadFactors | None = None) -> None:
        self.z = z
        self.dense = dense
        self.factors = factors
        if dense is not None:
            flat = widen(dense.reshape(dense.shape[0], -1))
            self.gramian = flat @ flat.T
        else:
            assert factors is not None
            self.gramian = factors.gramian()

    def jacobian(self) -> torch.Tensor:
        """(T, n k): the per-task gradients of ``z``, flattened."""
        dense = self.dense if self.dense is not None else self.factors.dense()  # type: ignore[union-attr]
        return dense.reshape(dense.shape[0], -1)

    def direction(self, weights: torch.Tensor) -> torch.Tensor:
        """``sum_t w_t Z[t]`` in the shape of ``z``."""
        w = weights.to(device=self.z.device, dtype=self.z.dtype)
        if self.dense is not None:
            return torch.tensordot(w, self.dense, dims=1)
        assert self.factors is not None
        return self.factors.direction(w).view_as(self.z)


def representation_step(
    losses: torch.Tensor,
    representation: torch.Tensor,
    task_params: Sequence[Sequence[torch.Tensor]],
    out: torch.Tensor | None = None,
    layout: TaskLayout | None = None,
) -> RepresentationGradients:
    """Per-task gradients of ``z`` for representation mode, factored when the heads allow it
    and that is cheaper.

    Each task's own parameters receive the gradient of that task's loss (as in
    :func:`representation_gradients`, whose dense result is used otherwise). ``layout``: the
    task parameters already resolved (:class:`TaskLayout`).
    """
    z = representation
    factors = head_factors(losses, z, task_params, layout) if z.ndim == 2 else None
    if factors is not None:
        factored, dense = factors.cost()
        return RepresentationGradients(z, factors=factors) if factored < dense else RepresentationGradients(z, dense=factors.dense())
    return RepresentationGradients(z, dense=representation_gradients(losses, z, task_params, out=out))


class SharedGradients:
    """The per-task gradients of the shared parameters at one step, held in factored form.

    ``J[t] = dL_t/dtheta`` is never formed unless asked for (:meth:`jacobian`). For each linear
    layer found in the graph (see :mod:`polytask.autograd_graph`) the engine keeps the layer's
    input ``x`` (m, d_in) and the per-task output gradients ``dY`` (T, m, d_out):

    - Gramian: ``<dY_s^T x, dY_t^T x> = <dY_s, (x x^T) dY_t>``, costing ``m^2 (d_in + T d_out)``
      instead of ``T m d_out d_in`` for the per-task weight gradients (the cheaper of the two
      is used for each layer), plus ``<sum_i dY_s, sum_i dY_t>`` for the bias;
    - combined gradient: ``(sum_t w_t dY_t)^T x``, one matrix product per layer.

    The per-task output gradients of all layers come from one batched vector-Jacobian product;
    autograd then skips the T weight-gradient products that the per-task loop computes.
    Other shared parameters (convolutions, norms, tied weights...) get their Jacobian columns
    from the same batched product.
    """

    def __init__(self, n_tasks: int, params: Sequence[torch.Tensor], sites: list[LinearSite], site_grads: list[torch.Tensor | None],
                 others: list[int], other_grads: Sequence[torch.Tensor | None]) -> None:
        self.n_tasks = n_tasks
        self.params = list(params)
        self.sites = sites
        self.others = others
        ref = self.params[0] if self.params else torch.zeros(())
        self._dy: list[torch.Tensor] = []
        self._wjac: list[torch.Tensor | None] = []
        gram = torch.zeros((n_tasks, n_tasks), dtype=ref.dtype, device=ref.device)
        self._x = [widen(site.x) for site in sites]
        for site, x, dy in zip(sites, self._x, site_grads):
            w = self.params[site.weight]
            if dy is None:
                dy = x.new_zeros((n_tasks, x.shape[0], w.shape[0]))
            dy = widen(dy)
            self._dy.append(dy)
            m, d_in = x.shape
            d_out = w.shape[0]
            factored = m * m * (d_in + n_tasks * d_out) + n_tasks * n_tasks * m * d_out
            direct = n_tasks * m * d_out * d_in + n_tasks * n_tasks * d_out * d_in
            if factored <= direct:
                kx = torch.matmul(torch.matmul(x, x.T), dy)  # (T, m, d_out)
                gram += dy.reshape(n_tasks, -1) @ kx.reshape(n_tasks, -1).T
                self._wjac.append(None)
            else:
                jw = torch.matmul(dy.transpose(1, 2), x).reshape(n_tasks, -1)  # (T, d_out * d_in)
                gram += jw @ jw.T
                self._wjac.append(jw)
            if site.bias is not None:
                gb = dy.sum(dim=1)
                gram += gb @ gb.T
        self._other = _flat(list(other_grads), [self.params[i] for i in others], n_tasks) if others else None
        if self._other is not None and self._other.numel():
            gram += self._other @ self._other.T
        self.gramian = gram

    def apply(self, weights: torch.Tensor) -> None:
        """Accumulate ``J^T w`` into the shared parameters' ``.grad``."""
        w = weights.to(self.gramian.dtype).to(self.gramian.device)
        for site, x, dy, jw in zip(self.sites, self._x, self._dy, self._wjac):
            c = torch.tensordot(w, dy, dims=1)  # (m, d_out)
            weight = self.params[site.weight]
            _add_grad(weight, (w @ jw).view_as(weight) if jw is not None else c.T @ x)
            if site.bias is not None:
                _add_grad(self.params[site.bias], c.sum(dim=0))
        if self._other is not None:
            vec = w @ self._other
            offset = 0
            for i in self.others:
                p = self.params[i]
                _add_grad(p, vec[offset : offset + p.numel()].view_as(p))
                offset += p.numel()

    def jacobian(self) -> torch.Tensor:
        """The full (T, P) Jacobian, in the order of the parameters (only for methods that need it)."""
        pieces: dict[int, torch.Tensor] = {}
        for site, x, dy, jw in zip(self.sites, self._x, self._dy, self._wjac):
            pieces[site.weight] = jw if jw is not None else torch.matmul(dy.transpose(1, 2), x).reshape(self.n_tasks, -1)
            if site.bias is not None:
                pieces[site.bias] = dy.sum(dim=1)
        offset = 0
        for i in self.others:
            n = self.params[i].numel()
            assert self._other is not None
            pieces[i] = self._other[:, offset : offset + n]
            offset += n
        if not self.params:
            return self.gramian.new_zeros((self.n_tasks, 0))
        return torch.cat([pieces[i] for i in range(len(self.params))], dim=1)

    def apply_vector(self, vector: torch.Tensor) -> None:
        """Accumulate a combined gradient given as a flat (P,) vector."""
        accumulate_flat_gradient([p for p in self.params], vector)  # type: ignore[arg-type]


def _trunk_gradients(z: torch.Tensor, gz: torch.Tensor, inputs: list, others: list[torch.Tensor]) -> Sequence[torch.Tensor | None]:
    """Batched (T, ...) gradients of ``inputs`` from the per-task cotangents ``gz`` of ``z``.

    One batched vector-Jacobian product, except on the CPU when the trunk has convolution
    kernels left to the generic path: vmapped convolution backward is slower there than T
    plain passes (measured: 0.7x the per-task loop), so the T passes are run one by one.
    """
    if z.device.type == "cpu" and any(p.ndim >= 3 for p in others):
        rows = [torch.autograd.grad([z], inputs, grad_outputs=[gz[t]], retain_graph=True, allow_unused=True) for t in range(gz.shape[0])]
        out: list[torch.Tensor | None] = []
        for i in range(len(inputs)):
            parts = [r[i] for r in rows]
            if all(p is None for p in parts):
                out.append(None)
            else:
                ref = next(p for p in parts if p is not None)
                out.append(torch.stack([p if p is not None else torch.zeros_like(ref) for p in parts]))
        return out
    return torch.autograd.grad([z], inputs, grad_outputs=[gz], retain_graph=True, allow_unused=True, is_grads_batched=True)


def shared_gradients(
    losses: torch.Tensor,
    shared_params: Sequence[torch.Tensor],
    task_params: Sequence[Sequence[torch.Tensor]],
    representation: torch.Tensor | None = None,
    separates: bool | None = None,
) -> SharedGradients:
    """Per-task gradient information of the shared parameters, in the cheapest exact way found.

    Each task's own parameters receive the gradient of that task's loss in ``.grad`` (as
    torchjd's ``mtl_backward`` does): aggregation concerns the shared parameters only.

    When ``representation`` separates the trunk from the heads (no shared parameter reaches the
    losses except through it), the heads are differentiated task by task
    (:func:`representation_gradients`) and the trunk once, batched over tasks, from ``z``;
    otherwise the whole loss vector is differentiated in one batched product. ``separates``
    states that fact when the caller already knows it (it is the same at every step of one
    network); None checks the graph.
    """
    n_tasks = losses.shape[0]
    shared = list(shared_params)
    z = representation
    use_cut = z is not None and z.requires_grad and z.grad_fn is not None
    if use_cut:
        use_cut = separates if separates is not None else not reaches_any([losses.grad_fn], shared, stop=z.grad_fn)  # type: ignore[union-attr]
    if use_cut:
        assert z is not None
        gz = representation_gradients(losses, z, task_params)
        sites, others = linear_sites(z.grad_fn, shared)
        inputs = [s.edge for s in sites] + [shared[i] for i in others]
        grads = _trunk_gradients(z, gz, inputs, [shared[i] for i in others]) if inputs else ()
        return SharedGradients(n_tasks, shared, sites, list(grads[: len(sites)]), others, grads[len(sites) :])
    sites, others = linear_sites(losses.grad_fn, shared)
    flat_task = [p for ps in task_params for p in ps]
    leaves = _Leaves(flat_task)
    inputs = [s.edge for s in sites] + [shared[i] for i in others] + leaves.leaves
    eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(losses, inputs, grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True) if inputs else ()
    k = len(sites) + len(others)
    own = [None if g is None else g.sum(0) for g in grads[k:]]  # row t is task t's own gradient, zero elsewhere
    leaves.add(own)
    return SharedGradients(n_tasks, shared, sites, list(grads[: len(sites)]), others, grads[len(sites) : k])
