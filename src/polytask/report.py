"""Side-by-side tables of MTL against STL (rich for terminals, plain dicts for JSON)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from rich.table import Table

from polytask.evaluate import HIGHER_IS_BETTER, delta_m, relative_delta

Metrics = Mapping[str, Mapping[str, float]]


def comparison_rows(mtl: Metrics, stl: Metrics | None, headline_only: bool = False) -> list[dict[str, Any]]:
    """One row per (task, metric): MTL, STL, the difference MTL - STL, and whether MTL is better.

    ``headline_only`` keeps each task's first metric (its headline)."""
    rows = []
    for task, metrics in mtl.items():
        for metric, value in list(metrics.items())[: 1 if headline_only else None]:
            row: dict[str, Any] = {"task": task, "metric": metric, "mtl": value}
            if stl is not None and task in stl:
                base = stl[task].get(metric, math.nan)
                row.update(
                    stl=base,
                    difference=value - base,
                    relative=relative_delta(metric, value, base),
                    mtl_better=(value > base) if metric in HIGHER_IS_BETTER else (value < base),
                )
            rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def comparison_table(mtl: Metrics, stl: Metrics | None, title: str = "test metrics", headline_only: bool = False) -> Table:
    table = Table(title=title)
    for col in ["task", "metric", "MTL"] + (["STL", "MTL - STL", "better"] if stl is not None else []):
        table.add_column(col, justify="left" if col in ("task", "metric", "better") else "right")
    for row in comparison_rows(mtl, stl, headline_only):
        arrow = "higher" if row["metric"] in HIGHER_IS_BETTER else "lower"
        cells = [row["task"], f"{row['metric']} ({arrow} is better)", _fmt(row["mtl"])]
        if stl is not None and "stl" in row:
            cells += [_fmt(row["stl"]), f"{row['difference']:+.4f}", "MTL" if row["mtl_better"] else "STL"]
        table.add_row(*cells)
    if stl is not None:
        dm = delta_m(mtl, stl)
        table.caption = f"delta-m of MTL against STL: {dm * 100:+.2f}% (positive: MTL better on average)"
    return table


def metrics_table(metrics: Metrics, title: str) -> Table:
    table = Table(title=title)
    table.add_column("task")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for task, ms in metrics.items():
        for m, v in ms.items():
            table.add_row(task, m, _fmt(v))
    return table
