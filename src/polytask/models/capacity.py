"""What an architecture costs: parameter counts, shared and per task, against the STL baseline.

The baseline is T independent hard-sharing networks with the same trunk (one expert / tower /
column) and head shapes, i.e. what ``polytask fit --stl`` trains without ``--match-params``;
pass ``stl_total`` to compare with another baseline (such as a width-matched one).
"""

from __future__ import annotations

from typing import Any

import torch

from polytask.models.base import MultiTaskNetwork
from polytask.models.options import LAYER_FIELDS
from polytask.models.registry import ARCHITECTURES, architecture_options, build_network
from polytask.models.stl import SingleTaskNetworks


def stl_baseline(network: MultiTaskNetwork) -> SingleTaskNetworks | None:
    """The STL networks matching ``network``'s config (None with user modules: their size is
    theirs to know)."""
    config = network.config()
    if config.get("user_modules") or config.get("trunk") == "custom" or "output_dims" not in config:
        return None
    layers = {k: config[k] for k in LAYER_FIELDS if k in config}
    return SingleTaskNetworks(config.get("input_dim"), config["output_dims"], input_shape=config.get("input_shape"), **layers)


def capacity_report(network: MultiTaskNetwork, stl_total: int | None = None) -> dict[str, Any]:
    """``{"arch", "shared", "tasks": {task: n}, "total", "stl_total", "ratio_to_stl"}``.

    ``shared`` counts :meth:`~MultiTaskNetwork.shared_parameters`, ``tasks`` each task's own
    parameters; ``ratio_to_stl = total / stl_total`` (None when no baseline can be built).
    """
    counts = network.parameter_counts()
    if stl_total is None:
        baseline = stl_baseline(network)
        stl_total = sum(p.numel() for p in baseline.parameters()) if baseline is not None else None
    total = int(counts["total"])
    return {
        "arch": network.arch,
        "shared": int(counts["shared"]),
        "tasks": {t: int(counts[t]) for t in network.task_names},
        "total": total,
        "stl_total": int(stl_total) if stl_total is not None else None,
        "ratio_to_stl": (total / stl_total) if stl_total else None,
    }


def format_capacity(report: dict[str, Any]) -> str:
    """One line: ``parameters (mmoe): shared 1,234; y1 56, y2 56; total 1,346 = 0.62x STL (2,170)``."""
    tasks = ", ".join(f"{t} {n:,}" for t, n in report["tasks"].items())
    line = f"parameters ({report['arch']}): shared {report['shared']:,}; {tasks}; total {report['total']:,}"
    if report.get("ratio_to_stl") is not None:
        line += f" = {report['ratio_to_stl']:.2f}x STL ({report['stl_total']:,})"
    return line


def capacity_table(
    input_dim: int | tuple[int, ...],
    output_dims: dict[str, int],
    archs: list[str] | None = None,
    seed: int = 0,
    **common: Any,
) -> list[dict[str, Any]]:
    """:func:`capacity_report` of every architecture (default: all but ``stl``) built with
    default options plus ``common`` (e.g. ``trunk``) on one problem."""
    names = archs or [a for a in ARCHITECTURES if a != "stl"]
    rows = []
    for arch in names:
        accepted = architecture_options(arch)
        options = {k: v for k, v in common.items() if k in accepted}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            rows.append(capacity_report(build_network(arch, input_dim, output_dims, **options)))
    return rows


def markdown_capacity_table(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`capacity_table` as a Markdown table."""
    tasks = list(rows[0]["tasks"]) if rows else []
    head = "| architecture | shared | " + " | ".join(f"task `{t}`" for t in tasks) + " | total | total / STL |"
    rule = "| --- | ---: | " + " | ".join("---:" for _ in tasks) + " | ---: | ---: |"
    lines = [head, rule]
    for r in rows:
        ratio = f"{r['ratio_to_stl']:.2f}" if r["ratio_to_stl"] is not None else "n/a"
        cells = " | ".join(f"{r['tasks'][t]:,}" for t in tasks)
        lines.append(f"| `{r['arch']}` | {r['shared']:,} | {cells} | {r['total']:,} | {ratio} |")
    return "\n".join(lines)
