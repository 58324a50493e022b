"""Built-in task heads that read one shared representation, evaluated together.

Each task's head is ``head_hidden`` hidden layers then a linear output layer (see
:func:`polytask.models.layers.head`). Heads of the same output width ``d`` form a *bank* of
``G`` tasks whose layers are stored stacked over the tasks:

- layer 1 reads ``z`` (n, k) for the whole bank in one matrix product,
  ``a_1 = z W_1^T + b_1`` with ``W_1`` (G h_1, k) the G first-layer weights one under the other;
- deeper layers are block-diagonal: ``W_l`` (G, h_l, h_{l-1}), one batched product over the bank;
- activation and dropout act on the packed (n, G h) activations.

So the heads of T tasks cost a few operations, not a few per task, and autograd and the
optimizer see one weight and one bias per layer and bank. Each task keeps its own parameters:
task g of a bank owns rows ``g h_1 .. (g+1) h_1`` of ``W_1`` and slice ``g`` of the deeper
weights; :meth:`FusedHeads.task_parameters` gives them as views of the bank (the gradient
engine resolves a view to its bank, :func:`polytask.gradients.parameter_source`). The state dict
holds one entry per task and layer, named as a per-task ``head()`` module names it
(``<task key>.<index>.weight``/``.bias``, the key from :func:`module_key`), so model
directories written with one module per head load unchanged, and the initial values are those
one ``head()`` per task would draw from the same seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from polytask.losses import OutputLayout
from polytask.models.layers import ACTIVATIONS, head
from polytask.models.task_modules import TaskModules, module_key


class _Bank:
    """The heads of one output width: task names and, per layer, the stacked parameters' names."""

    def __init__(self, names: list[str], width: int, layer_widths: list[int]) -> None:
        self.names = names
        self.width = width
        self.layer_widths = layer_widths  # output width of each layer, the last one = width
        self.params: list[tuple[str, str]] = []  # (weight name, bias name) per layer


def _linear_values(in_dim: int, out_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The initial (weight, bias) of ``nn.Linear(in_dim, out_dim)``, drawn with the same random
    calls in the same order as its constructor (Kaiming-uniform weight with ``a = sqrt(5)``,
    bias uniform in ``+-1/sqrt(in_dim)``), without building the module: one head() per task
    from the same seed holds the same values."""
    weight, bias = torch.empty(out_dim, in_dim), torch.empty(out_dim)
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5))
    bound = 1 / math.sqrt(in_dim) if in_dim > 0 else 0
    nn.init.uniform_(bias, -bound, bound)
    return weight, bias


class FusedHeads(nn.Module):
    """The heads of ``output_dims`` on a representation of width ``rep_dim``, in banks of equal
    output width (see the module docstring); ``forward(z)`` gives the packed (n, H) outputs
    laid out by :attr:`layout`."""

    def __init__(self, output_dims: dict[str, int], rep_dim: int, hidden: Sequence[int] = (), activation: str = "relu",
                 dropout: float = 0.0) -> None:
        super().__init__()
        with torch.device("meta"):  # the layout of one head() (no values drawn, no random numbers used)
            template = head(rep_dim, 1, hidden, activation, dropout)
        #: Index of each linear layer inside a per-task head (the state-dict names).
        self.layer_index = [i for i, m in enumerate(template) if isinstance(m, nn.Linear)]
        widths = [rep_dim, *[int(h) for h in hidden]]
        reference = {t: [_linear_values(a, b) for a, b in zip(widths, [*widths[1:], int(d)])] for t, d in output_dims.items()}
        self._act = (ACTIVATIONS[activation](),)  # a tuple: not a submodule, no state-dict entries
        self.dropout = float(dropout)
        self.banks: list[_Bank] = []
        by_width: dict[int, list[str]] = {}
        for t, d in output_dims.items():
            by_width.setdefault(int(d), []).append(t)
        for b, (width, names) in enumerate(by_width.items()):
            bank = _Bank(names, width, [int(h) for h in hidden] + [width])
            for layer in range(len(self.layer_index)):
                ws = [reference[t][layer][0] for t in names]
                bs = [reference[t][layer][1] for t in names]
                weight = torch.cat(ws) if layer == 0 else torch.stack(ws)
                pair = (f"bank{b}_weight{layer}", f"bank{b}_bias{layer}")
                self.register_parameter(pair[0], nn.Parameter(weight))
                self.register_parameter(pair[1], nn.Parameter(torch.cat(bs)))
                bank.params.append(pair)
            self.banks.append(bank)
        self.layout = OutputLayout.of({t: b.width for b in self.banks for t in b.names})
        self._position = {t: (bank, g) for bank in self.banks for g, t in enumerate(bank.names)}
        self._state_names: dict[str, list[str]] = {}  # state-dict entry names by prefix
        #: The bank parameter behind each state-dict entry, in the entries' order.
        self._entry_sources = [n for t in self.layout.names for pair in self._position[t][0].params for n in pair]

    @property
    def task_names(self) -> list[str]:
        return list(self.layout.names)

    # -- computing ---------------------------------------------------------------------------
    def _bank(self, bank: _Bank, z: torch.Tensor) -> torch.Tensor:
        n, g = z.shape[0], len(bank.names)
        h = z
        for layer, (w_name, b_name) in enumerate(bank.params):
            weight, bias = getattr(self, w_name), getattr(self, b_name)
            if layer == 0:
                h = F.linear(h, weight, bias)
                continue
            h = F.dropout(self._act[0](h), self.dropout, self.training) if self.dropout > 0 else self._act[0](h)
            stacked = h.reshape(n, g, weight.shape[2]).transpose(0, 1)  # (G, n, h_{l-1}); widths named: n may be 0
            h = torch.baddbmm(bias.view(g, 1, -1), stacked, weight.transpose(1, 2)).transpose(0, 1).reshape(n, g * weight.shape[1])
        return h

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        outs = [self._bank(bank, z) for bank in self.banks]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)

    def outputs(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each task's output, a view of the packed outputs."""
        return self.layout.split(self(z))

    # -- the parameters of each task -----------------------------------------------------------
    def _views(self, task: str, source: Any) -> list[torch.Tensor]:
        """Task ``task``'s (weight, bias) of every layer, cut from ``source(name)`` (a parameter
        or a tensor of the same shape)."""
        bank, g = self._position[task]
        out: list[torch.Tensor] = []
        for layer, (w_name, b_name) in enumerate(bank.params):
            w, b = source(w_name), source(b_name)
            rows = bank.layer_widths[layer]
            out.append(w[g * rows : (g + 1) * rows] if layer == 0 else w[g])
            out.append(b[g * rows : (g + 1) * rows])
        return out

    def task_parameters(self, task: str) -> list[torch.Tensor]:
        """The task's own weights and biases: views of the banks (no gradient flows through a
        view; the gradient engine adds into the bank's rows)."""
        with torch.no_grad():
            return self._views(task, lambda name: getattr(self, name))

    # -- the state dict: one entry per task and layer ----------------------------------------------
    def _entry_names(self, task: str, prefix: str) -> list[str]:
        key = module_key(task)
        return [f"{prefix}{key}.{idx}.{kind}" for idx in self.layer_index for kind in ("weight", "bias")]

    def _all_views(self, source: Any) -> list[torch.Tensor]:
        """:meth:`_views` of every task in layout order, each bank parameter cut once (``split``
        or ``unbind``: one operation for the bank's G tasks, not G slices)."""
        cut: dict[str, tuple[torch.Tensor, ...]] = {}
        for bank in self.banks:
            for layer, (w_name, b_name) in enumerate(bank.params):
                rows = bank.layer_widths[layer]
                w = source(w_name)
                cut[w_name] = w.split(rows) if layer == 0 else w.unbind(0)
                cut[b_name] = source(b_name).split(rows)
        out: list[torch.Tensor] = []
        for task in self.layout.names:
            bank, g = self._position[task]
            for w_name, b_name in bank.params:
                out += (cut[w_name][g], cut[b_name][g])
        return out

    def _state_names_for(self, prefix: str) -> list[str]:
        """The entry names of every task in layout order (as :meth:`_all_views`), made once per prefix."""
        names = self._state_names.get(prefix)
        if names is None:
            names = self._state_names[prefix] = [n for t in self.layout.names for n in self._entry_names(t, prefix)]
        return names

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        views = self._all_views(lambda name: getattr(self, name) if keep_vars else getattr(self, name).detach())
        for name, value in zip(self._state_names_for(prefix), views):
            destination[name] = value if keep_vars else value.clone()

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, local_metadata: dict[str, Any], strict: bool,
                              missing_keys: list[str], unexpected_keys: list[str], error_msgs: list[str]) -> None:
        names = self._state_names_for(prefix)
        # per bank parameter: the (entry name, value, view of the bank) of each task, in bank order
        parts: dict[str, list[tuple[str, Any, torch.Tensor]]] = {}
        views = self._all_views(lambda n: getattr(self, n))
        for source, name, target in zip(self._entry_sources, names, views):
            parts.setdefault(source, []).append((name, state_dict.get(name), target))
        with torch.no_grad():
            for source, entries in parts.items():
                self._load_bank_parameter(getattr(self, source), entries, missing_keys, error_msgs)
        if strict:
            expected = set(names)
            unexpected_keys.extend(k for k in state_dict if k.startswith(prefix) and k not in expected)

    @staticmethod
    def _load_bank_parameter(param: torch.Tensor, entries: list[tuple[str, Any, torch.Tensor]], missing_keys: list[str],
                             error_msgs: list[str]) -> None:
        """Copy the tasks' entries into one bank parameter: in one operation when every entry is
        there with its shape, else entry by entry (naming each missing or misshapen one)."""
        fits = [value is not None and tuple(value.shape) == tuple(target.shape) for _, value, target in entries]
        if all(fits):
            values = [value for _, value, _ in entries]
            param.copy_(torch.cat(values) if entries[0][2].dim() == param.dim() else torch.stack(values))
            return
        for (name, value, target), fit in zip(entries, fits):
            if value is None:
                missing_keys.append(name)
            elif not fit:
                error_msgs.append(f"size mismatch for {name}: copying a param with shape {tuple(value.shape)}, "
                                  f"the shape in the current model is {tuple(target.shape)}.")
            else:
                target.copy_(value)


class PerTaskHeads(TaskModules):
    """One head module per task (the user's ``head_module``, or heads that read different
    inputs), keyed by task name; ``forward(z)`` runs every head on the same ``z`` and packs the
    outputs in task order (:attr:`layout`)."""

    def __init__(self, heads: dict[str, nn.Module], output_dims: dict[str, int]) -> None:
        super().__init__(heads)
        self.layout = OutputLayout.of({t: int(output_dims[t]) for t in heads})

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        outs = [self[t](z) for t in self.layout.names]
        return outs[0] if len(outs) == 1 else torch.cat(outs, 1)

    def outputs(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        return {t: self[t](z) for t in self.layout.names}

    def task_parameters(self, task: str) -> list[torch.Tensor]:
        return list(self[task].parameters())
