"""Networks whose tasks share nothing, trained task by task on each task's own rows.

In the multi-input setting (``--task-column``: each row labels one task) a single-task network
trained jointly with the others would run over every row although only its own ``n_t`` of the
``n`` training rows carry its loss. Trained alone on those rows, it costs ``n_t / n`` as much.

Each task's network is trained as it would be alone on its own table, with the run's settings
(batch size ``B``, epochs, early stopping on its own validation rows, seed), from its part of the
joint network's starting weights; the split, preprocessing and metrics are the joint run's. What
differs from the joint run: a task's batches hold ``B`` of its own rows (a joint batch held about
``B n_t / n`` of them) and it takes ``n_t / B`` steps per epoch (the joint run took ``n / B``), and
each task stops early on its own patience. Matching the joint run's steps instead (batches of
``ceil(B n_t / n)`` own rows) was measured slower than the joint run (per-step overhead times T).

This module puts the trained networks together into one model; :func:`polytask.workflow.train_model`
runs the per-task trainings.
"""

from __future__ import annotations

from typing import Any

import torch

from polytask.fitted import FittedModel
from polytask.models.base import MultiTaskNetwork
from polytask.setups import NetworkBuilder, RunPlan


def starting_from(plan: RunPlan, init: dict[str, torch.Tensor]) -> NetworkBuilder:
    """A builder of one task's network that starts from that task's part of ``init`` (the joint
    network's initial state)."""
    build = plan.network_builder or plan.spec.build

    def builder(size: Any, output_dims: dict[str, int]) -> MultiTaskNetwork:
        network = build(size, output_dims)
        network.load_state_dict({k: init[k] for k in network.state_dict()})
        return network

    return builder


def _merged_history(parts: dict[str, FittedModel]) -> list[dict[str, Any]]:
    """Epoch logs of the per-task runs side by side (a task that stopped early drops out)."""
    histories = [p.summary["history"] for p in parts.values()]
    merged: list[dict[str, Any]] = []
    for epoch in range(max(len(h) for h in histories)):
        entry: dict[str, Any] = {"epoch": epoch}
        for history in (h for h in histories if epoch < len(h)):
            for key, value in history[epoch].items():
                if isinstance(value, dict):
                    entry.setdefault(key, {}).update(value)
        merged.append(entry)
    return merged


def assemble(plan: RunPlan, network: MultiTaskNetwork, parts: dict[str, FittedModel]) -> FittedModel:
    """One model from the per-task models ``parts``: ``network`` (the joint network) with each
    task's part at that task's best epoch; the summary says how each task was trained."""
    state: dict[str, torch.Tensor] = {}
    for part in parts.values():
        state.update(part.network.state_dict())
    network.load_state_dict(state)
    network.eval().cpu()
    best = {t: part.best_epoch[t] for t, part in parts.items()}
    own = {t: {"train_rows": len(plan.prepared.train.labelled_rows(t)), "batch_size": plan.config.batch_size} for t in parts}
    summary = {
        "kind": plan.name,
        "arch": network.arch,
        "epochs_run": max(p.summary["epochs_run"] for p in parts.values()),
        "stopped_early": all(p.summary["stopped_early"] for p in parts.values()),
        "best_epoch": best,
        "train_seconds": sum(p.summary["train_seconds"] for p in parts.values()),
        "parameters": network.parameter_counts(),
        "balancer": plan.config.balancer,
        "applied_weights": {t: p.summary["applied_weights"][t] for t, p in parts.items()},
        "history": _merged_history(parts),
        "controls": {**plan.controls, "own_rows": own},
    }
    return FittedModel(
        network=network,
        tasks=plan.prepared.tasks,
        encoders=plan.prepared.encoders,
        preprocessor=plan.prepared.preprocessor,
        # a snapshot per best epoch, each the assembled state (each task is read from its own)
        snapshots={e: {k: v.detach().clone() for k, v in state.items()} for e in sorted(set(best.values()))},
        best_epoch=best,
        train_config=plan.config.to_dict(),
        summary=summary,
    )
