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

Task-specific parameters receive the gradient of their own task's loss in every path.
See docs/GRADIENT_ENGINE.md for the method and measurements.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from polytask.autograd_graph import LinearSite, linear_head_inputs, linear_sites, reaches_any, task_roots


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
    eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(
        losses, params, grad_outputs=eye, retain_graph=retain_graph, allow_unused=True, is_grads_batched=True
    )
    return torch.cat(
        [(g if g is not None else torch.zeros((n_tasks, *p.shape), dtype=losses.dtype, device=losses.device)).reshape(n_tasks, -1)
         for g, p in zip(grads, params)],
        dim=1,
    )


def accumulate_flat_gradient(params: Sequence[nn.Parameter], vector: torch.Tensor) -> None:
    """Add the flat ``vector`` (P,) into the ``.grad`` of ``params``, in order."""
    offset = 0
    for p in params:
        n = p.numel()
        piece = vector[offset : offset + n].view_as(p).to(p.dtype)
        if p.grad is None:
            p.grad = piece.clone()
        else:
            p.grad.add_(piece)
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


def _add_grad(p: torch.Tensor, g: torch.Tensor | None) -> None:
    if g is None:
        return
    g = g.detach().to(p.dtype)
    if p.grad is None:
        p.grad = g.clone()
    else:
        p.grad.add_(g)


def representation_gradients(
    losses: torch.Tensor,
    representation: torch.Tensor,
    task_params: Sequence[Sequence[torch.Tensor]],
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Per-task gradients of the shared representation ``z``: a (T, *z.shape) tensor.

    As a side effect each task's own parameters (``task_params[t]``) receive the gradient of
    that task's loss in ``.grad``. When the loss vector is a stack of per-task losses (the
    trainer's), each head is differentiated alone (T cheap passes); otherwise one batched
    vector-Jacobian product covers all tasks. The graph is kept. ``out``, a (T, *z.shape)
    buffer, receives the result when given (a caller reusing one buffer across steps avoids
    allocating T copies of ``z`` each step).
    """
    n_tasks = losses.shape[0]
    roots = task_roots(losses)
    z = representation
    if roots is not None:
        if out is None or out.shape != (n_tasks, *z.shape) or out.dtype != z.dtype or out.device != z.device:
            out = z.new_empty((n_tasks, *z.shape))
        for t, (edge, scale) in enumerate(zip(roots.edges, roots.scale)):
            params = list(task_params[t])
            if edge is None:
                out[t].zero_()
                continue
            grads = torch.autograd.grad(
                [edge], [z, *params], grad_outputs=[scale.reshape(())], retain_graph=True, allow_unused=True
            )
            if grads[0] is None:
                out[t].zero_()
            else:
                out[t].copy_(grads[0])
            for p, g in zip(params, grads[1:]):
                _add_grad(p, g)
        return out
    flat_params = [p for ps in task_params for p in ps]
    eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(losses, [z, *flat_params], grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True)
    gz = grads[0] if grads[0] is not None else z.new_zeros((n_tasks, *z.shape))
    k = 1
    for t, ps in enumerate(task_params):
        for p in ps:
            g = grads[k]
            k += 1
            _add_grad(p, g[t] if g is not None else None)
    return gz


class RepresentationGradients:
    """The per-task gradients of ``z`` at one step: ``Z[t] = dL_t/dz``, flattened to (T, n k).

    When each head reads ``z`` through one linear layer (``y_t = z W_t^T + b_t``), ``Z[t] =
    dY_t W_t`` is kept factored: the Gramian is ``<dY_s W_s, dY_t W_t> = sum((dY_s^T dY_t) *
    (W_s W_t^T))`` and the combined gradient ``sum_t w_t dY_t W_t`` is one matrix product, so the
    T gradients of ``z`` (T x n x k) are never formed (used when cheaper, e.g. for heads that
    start with a narrow layer). Otherwise ``Z`` is held as a (T, *z.shape) tensor.
    """

    def __init__(self, z: torch.Tensor, dense: torch.Tensor | None = None,
                 factors: list[tuple[torch.Tensor, torch.Tensor] | None] | None = None) -> None:
        self.z = z
        self.dense = dense
        self.factors = factors
        if dense is not None:
            flat = dense.reshape(dense.shape[0], -1)
            self.gramian = flat @ flat.T
            return
        assert factors is not None
        n_tasks = len(factors)
        live = [(t, f) for t, f in enumerate(factors) if f is not None]
        gram = z.new_zeros((n_tasks, n_tasks))
        if live:
            # all tasks at once: columns of D = [dY_1 ... dY_T] (n, H), rows of V = [W_1; ...; W_T] (H, k)
            d = torch.cat([dy for _, (dy, _) in live], dim=1)
            v = torch.cat([wt for _, (_, wt) in live], dim=0)
            blocks = torch.zeros((n_tasks, d.shape[1]), dtype=z.dtype, device=z.device)
            start = 0
            for t, (dy, _) in live:
                blocks[t, start : start + dy.shape[1]] = 1.0
                start += dy.shape[1]
            gram = blocks @ ((d.T @ d) * (v @ v.T)) @ blocks.T
        self.gramian = gram

    def jacobian(self) -> torch.Tensor:
        """(T, n k): the per-task gradients of ``z``, flattened."""
        if self.dense is not None:
            return self.dense.reshape(self.dense.shape[0], -1)
        assert self.factors is not None
        return torch.stack([(dy @ w).reshape(-1) if (dy is not None) else self.z.new_zeros(self.z.numel())
                            for dy, w in ((f if f is not None else (None, None)) for f in self.factors)])

    def direction(self, weights: torch.Tensor) -> torch.Tensor:
        """``sum_t w_t Z[t]`` in the shape of ``z``."""
        w = weights.to(self.z.dtype).to(self.z.device)
        if self.dense is not None:
            return torch.tensordot(w, self.dense, dims=1)
        assert self.factors is not None
        live = [(t, f) for t, f in enumerate(self.factors) if f is not None]
        if not live:
            return torch.zeros_like(self.z)
        left = torch.cat([w[t] * dy for t, (dy, _) in live], dim=1)
        right = torch.cat([wt for _, (_, wt) in live], dim=0)
        return left @ right


def representation_step(
    losses: torch.Tensor,
    representation: torch.Tensor,
    task_params: Sequence[Sequence[torch.Tensor]],
    out: torch.Tensor | None = None,
) -> RepresentationGradients:
    """Per-task gradients of ``z`` for representation mode, factored when the heads allow it.

    Each task's own parameters receive the gradient of that task's loss (as in
    :func:`representation_gradients`, whose dense result is used otherwise).
    """
    z = representation
    roots = task_roots(losses)
    heads = linear_head_inputs(roots, z) if roots is not None else None
    if roots is not None and heads is not None:
        n, k = z.shape
        n_tasks = len(heads)
        widths = [h.weight.shape[0] for h in heads if h is not None]
        factored = n_tasks * n_tasks * (max(widths, default=1) ** 2) * (n + k)
        dense = n_tasks * n * k * (max(widths, default=1) + n_tasks)
        if factored < dense:
            factors: list[tuple[torch.Tensor, torch.Tensor] | None] = []
            for t, (edge, scale, head) in enumerate(zip(roots.edges, roots.scale, heads)):
                params = list(task_params[t])
                if edge is None or head is None:
                    factors.append(None)
                    if edge is not None and params:
                        grads = torch.autograd.grad([edge], params, grad_outputs=[scale.reshape(())], retain_graph=True, allow_unused=True)
                        for p, g in zip(params, grads):
                            _add_grad(p, g)
                    continue
                grads = torch.autograd.grad([edge], [head.edge, *params], grad_outputs=[scale.reshape(())],
                                            retain_graph=True, allow_unused=True)
                dy = grads[0]
                factors.append((dy.detach(), head.weight.detach()) if dy is not None else None)
                for p, g in zip(params, grads[1:]):
                    _add_grad(p, g)
            return RepresentationGradients(z, factors=factors)
    return RepresentationGradients(z, dense=representation_gradients(losses, z, task_params, out=out))


def accumulate_own_task_gradients(losses: torch.Tensor, task_params: Sequence[Sequence[torch.Tensor]]) -> None:
    """Add ``dL_t/dtheta_t`` to the ``.grad`` of each task's own parameters (graph kept).

    Per-task passes through the heads when the loss vector is a stack of per-task losses,
    otherwise one batched product whose row t is kept for task t's parameters.
    """
    flat = [p for ps in task_params for p in ps]
    if not flat:
        return
    roots = task_roots(losses)
    if roots is not None:
        for edge, scale, params in zip(roots.edges, roots.scale, task_params):
            if edge is None or not params:
                continue
            grads = torch.autograd.grad([edge], list(params), grad_outputs=[scale.reshape(())], retain_graph=True, allow_unused=True)
            for p, g in zip(params, grads):
                _add_grad(p, g)
        return
    eye = torch.eye(losses.shape[0], dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(losses, flat, grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True)
    k = 0
    for t, ps in enumerate(task_params):
        for p in ps:
            _add_grad(p, grads[k][t] if grads[k] is not None else None)
            k += 1


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
        for site, dy in zip(sites, site_grads):
            w = self.params[site.weight]
            x = site.x
            if dy is None:
                dy = x.new_zeros((n_tasks, x.shape[0], w.shape[0]))
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
        for site, dy, jw in zip(self.sites, self._dy, self._wjac):
            c = torch.tensordot(w, dy, dims=1)  # (m, d_out)
            weight = self.params[site.weight]
            _add_grad(weight, (w @ jw).view_as(weight) if jw is not None else c.T @ site.x)
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
        for site, dy, jw in zip(self.sites, self._dy, self._wjac):
            pieces[site.weight] = jw if jw is not None else torch.matmul(dy.transpose(1, 2), site.x).reshape(self.n_tasks, -1)
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
    inputs = [s.edge for s in sites] + [shared[i] for i in others] + flat_task
    eye = torch.eye(n_tasks, dtype=losses.dtype, device=losses.device)
    grads = torch.autograd.grad(losses, inputs, grad_outputs=eye, retain_graph=True, allow_unused=True, is_grads_batched=True) if inputs else ()
    k = len(sites) + len(others)
    for t, ps in enumerate(task_params):
        for p in ps:
            g = grads[k]
            k += 1
            _add_grad(p, g[t] if g is not None else None)
    return SharedGradients(n_tasks, shared, sites, list(grads[: len(sites)]), others, grads[len(sites) : len(sites) + len(others)])
