"""Hidden-unit sharing (Caruana, "Multitask Learning", Machine Learning 28, 1997, section 5).

A back-propagation MTL net shows which tasks are related through which units of the shared
representation each task's output uses. For a trained network with representation
``z = encode(x)`` (flattened to K units per row) and outputs ``y_t = decode(z, x)[t]``:

- gradient sensitivity:  ``S[t, k] = mean_rows sum_c |d y_{t,c} / d z_k|``;
- ablation sensitivity:  ``S[t, k] = mean_rows sum_c |y_{t,c}(z) - y_{t,c}(z with z_k := mean(z_k))|``
  (the unit replaced by its mean over the data, everything else unchanged);

summed over the output components ``c`` of a task (one for a scalar regression, one logit per
class for multiclass). Units that are constant over the data (a dead ReLU, say) carry no
information about which task uses them and are left out. The sharing of tasks ``k`` and ``l``
is the Spearman rank correlation of their sensitivity vectors ``S[k]`` and ``S[l]``: high when
both tasks lean on the same units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from scipy import stats

from polytask.errors import PolytaskError
from polytask.fitted import FittedModel
from polytask.models.base import MultiTaskNetwork
from polytask.relate.matrix import TaskMatrix

Sensitivity = Literal["gradient", "ablation"]
SENSITIVITIES: tuple[str, ...] = ("gradient", "ablation")


def _network(model: FittedModel | MultiTaskNetwork) -> MultiTaskNetwork:
    return model.network if isinstance(model, FittedModel) else model


def _task_order(network: MultiTaskNetwork, tasks: Sequence[str] | None) -> list[str]:
    names = list(tasks) if tasks is not None else list(network.task_names)
    unknown = [t for t in names if t not in network.task_names]
    if unknown:
        raise PolytaskError(f"the network has no output for task '{unknown[0]}'")
    return names


def unit_sensitivity(
    model: FittedModel | MultiTaskNetwork,
    x: torch.Tensor,
    method: Sensitivity = "gradient",
    tasks: Sequence[str] | None = None,
    batch_size: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Sensitivity ``S`` (T, K) of each task output to each representation unit, and the (K,)
    boolean mask of units that vary over ``x`` (see the module docstring for the formulas).

    The network is evaluated in eval mode with its current parameters.
    """
    if method not in SENSITIVITIES:
        raise PolytaskError(f"unknown sensitivity '{method}' (choose from {', '.join(SENSITIVITIES)})")
    network = _network(model)
    names = _task_order(network, tasks)
    if x.shape[0] == 0:
        raise PolytaskError("no rows to measure hidden-unit sensitivity on")
    device = next(network.parameters()).device
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            shape = network.encode(x[:1].to(device)).shape[1:]
            z_all = torch.cat([network.encode(x[s : s + batch_size].to(device)).flatten(1)
                               for s in range(0, x.shape[0], batch_size)])
        unit_mean = z_all.mean(dim=0)
        active = (z_all.max(dim=0).values - z_all.min(dim=0).values) > 1e-8 * (1 + z_all.abs().max())
        total = torch.zeros(len(names), z_all.shape[1], dtype=torch.float64)
        for start in range(0, x.shape[0], batch_size):
            xb = x[start : start + batch_size].to(device)
            zb = z_all[start : start + batch_size]
            if method == "gradient":
                total += _gradient_batch(network, xb, zb, shape, names)
            else:
                total += _ablation_batch(network, xb, zb, shape, names, unit_mean)
    finally:
        network.train(was_training)
    return (total / x.shape[0]).numpy(), active.cpu().numpy()


def _gradient_batch(network: MultiTaskNetwork, x: torch.Tensor, z: torch.Tensor, shape: torch.Size,
                    names: list[str]) -> torch.Tensor:
    """Sum over rows of sum_c |d y_{t,c} / d z_k| (rows are independent in eval mode, so the
    gradient of the row-summed output gives every row's own derivative)."""
    zr = z.detach().clone().reshape(z.shape[0], *shape).requires_grad_(True)
    outputs = network.decode(zr, x)
    out = torch.zeros(len(names), z.shape[1], dtype=torch.float64)
    for t, name in enumerate(names):
        y = outputs[name].reshape(z.shape[0], -1)
        for c in range(y.shape[1]):
            (g,) = torch.autograd.grad(y[:, c].sum(), zr, retain_graph=True, allow_unused=True)
            if g is not None:
                out[t] += g.reshape(z.shape[0], -1).abs().sum(dim=0).double().cpu()
    return out


def _ablation_batch(network: MultiTaskNetwork, x: torch.Tensor, z: torch.Tensor, shape: torch.Size,
                    names: list[str], unit_mean: torch.Tensor) -> torch.Tensor:
    """Sum over rows of sum_c |y_{t,c}(z) - y_{t,c}(z with unit k at its mean)|."""
    out = torch.zeros(len(names), z.shape[1], dtype=torch.float64)
    with torch.no_grad():
        base = network.decode(z.reshape(z.shape[0], *shape), x)
        for k in range(z.shape[1]):
            zk = z.clone()
            zk[:, k] = unit_mean[k]
            changed = network.decode(zk.reshape(z.shape[0], *shape), x)
            for t, name in enumerate(names):
                out[t, k] = float((changed[name] - base[name]).abs().sum())
    return out


def spearman_matrix(sensitivity: np.ndarray) -> np.ndarray:
    """``R[k, l]`` = Spearman rank correlation of rows ``k`` and ``l`` of ``sensitivity`` (T, K)
    (scipy.stats.spearmanr, average ranks for ties); NaN where a row is constant."""
    s = np.asarray(sensitivity, dtype=float)
    t = s.shape[0]
    out = np.full((t, t), np.nan)
    for a in range(t):
        for b in range(a, t):
            if np.ptp(s[a]) == 0 or np.ptp(s[b]) == 0:
                continue
            rho = stats.spearmanr(s[a], s[b]).statistic
            out[a, b] = out[b, a] = float(rho)
    return out


def hidden_unit_sharing(
    model: FittedModel | MultiTaskNetwork,
    x: torch.Tensor,
    method: Sensitivity = "gradient",
    tasks: Sequence[str] | None = None,
) -> tuple[TaskMatrix, np.ndarray]:
    """The T x T sharing matrix (Spearman correlation of sensitivity vectors over the units that
    vary on ``x``) and the (T, K_active) sensitivities behind it."""
    network = _network(model)
    names = _task_order(network, tasks)
    sens, active = unit_sensitivity(network, x, method, names)
    if active.sum() < 3:
        raise PolytaskError(f"only {int(active.sum())} representation units vary on the data: too few to rank")
    used = sens[:, active]
    matrix = TaskMatrix(
        f"sharing_{method}", names, spearman_matrix(used),
        description=f"Spearman correlation of {method} sensitivities over {int(active.sum())} shared units (Caruana 1997)",
    )
    return matrix, used
