"""Train the recommended groups and compare them with all-in-one MTL and with STL.

Every model is trained on the same split (the prepared problem's), so test metrics compare
like with like. A group of several tasks is one multi-task network of the chosen architecture;
a group of one task is that task's single-task network, exactly as in the STL baseline. The
report gives each task's test metrics under the three set-ups, delta-m of the grouping and of
all-in-one MTL against STL (Maninis et al. 2019: mean relative improvement, positive is
better), and the total parameter count of each set-up (the grouping's is the sum over its
networks). The same on the validation rows (``val_metrics``, ``val_delta_m``) is what a choice
between the set-ups may be based on; the test rows then say whether it holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from polytask.evaluate import delta_m
from polytask.fitted import FittedModel
from polytask.relate.subsets import subset_prepared
from polytask.training.callbacks import Callback
from polytask.training.config import TrainConfig
from polytask.data.prepare import Prepared
from polytask.setups import stl_settings
from polytask.workflow import NetworkSpec, train_model

Metrics = dict[str, dict[str, float]]


@dataclass
class GroupComparison:
    """Test metrics per task for the grouping, all-in-one MTL and STL, with delta-m and sizes."""

    groups: list[list[str]]
    metrics: dict[str, Metrics]  # "groups" | "mtl" | "stl" -> task -> metric -> value
    parameters: dict[str, int]
    delta_m: dict[str, float]  # "groups" | "mtl" -> delta-m against STL
    seconds: dict[str, float] = field(default_factory=dict)
    val_metrics: dict[str, Metrics] = field(default_factory=dict)
    val_delta_m: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": self.groups,
            "test_metrics": self.metrics,
            "total_parameters": self.parameters,
            "delta_m_vs_stl": self.delta_m,
            "val_metrics": self.val_metrics,
            "val_delta_m_vs_stl": self.val_delta_m,
            "train_seconds": self.seconds,
        }

    def rows(self) -> list[dict[str, Any]]:
        """One row per (task, metric) with the three values side by side."""
        out = []
        for task, metrics in self.metrics["stl"].items():
            for metric, stl in metrics.items():
                out.append({
                    "task": task, "metric": metric, "groups": self.metrics["groups"].get(task, {}).get(metric),
                    "mtl": self.metrics["mtl"].get(task, {}).get(metric), "stl": stl,
                })
        return out


def _main_metrics(model: FittedModel, main: set[str], split: str = "test") -> Metrics:
    return {t: m for t, m in model.summary[f"{split}_metrics"].items() if t in main}


def compare_groups(
    prepared: Prepared,
    groups: Sequence[Sequence[str]],
    spec: NetworkSpec | None = None,
    config: TrainConfig | None = None,
    mtl: FittedModel | None = None,
    callbacks: Sequence[Callback] = (),
) -> GroupComparison:
    """Train every group, the STL baseline and (unless ``mtl`` is given, trained on the same
    prepared problem) all-in-one MTL; compare them on the test rows."""
    main = {t.name for t in prepared.tasks if not t.auxiliary}
    spec, config = spec or NetworkSpec(), config or TrainConfig()
    stl_spec, stl_config = stl_settings(spec, config)
    seconds: dict[str, float] = {}
    grouped: Metrics = {}
    grouped_val: Metrics = {}
    group_params = 0
    group_seconds = 0.0
    for members in groups:
        alone = len(members) == 1
        model = train_model(subset_prepared(prepared, list(members)), stl_spec if alone else spec,
                            stl_config if alone else config, callbacks=callbacks, name="stl" if alone else "mtl")
        grouped.update(_main_metrics(model, main))
        grouped_val.update(_main_metrics(model, main, "val"))
        group_params += int(model.network.parameter_counts()["total"])
        group_seconds += float(model.summary["train_seconds"])
    seconds["groups"] = group_seconds
    if mtl is None:
        mtl = train_model(prepared, spec, config, callbacks=callbacks)
    stl = train_model(prepared, stl_spec, stl_config, callbacks=callbacks, name="stl")
    seconds["mtl"] = float(mtl.summary["train_seconds"])
    seconds["stl"] = float(stl.summary["train_seconds"])
    metrics = {"groups": grouped, "mtl": _main_metrics(mtl, main), "stl": _main_metrics(stl, main)}
    val = {"groups": grouped_val, "mtl": _main_metrics(mtl, main, "val"), "stl": _main_metrics(stl, main, "val")}
    return GroupComparison(
        groups=[list(g) for g in groups],
        metrics=metrics,
        parameters={"groups": group_params, "mtl": int(mtl.network.parameter_counts()["total"]),
                    "stl": int(stl.network.parameter_counts()["total"])},
        delta_m={"groups": delta_m(metrics["groups"], metrics["stl"]), "mtl": delta_m(metrics["mtl"], metrics["stl"])},
        seconds=seconds,
        val_metrics=val,
        val_delta_m={"groups": delta_m(val["groups"], val["stl"]), "mtl": delta_m(val["mtl"], val["stl"])},
    )
