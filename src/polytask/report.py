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


# -- what a user should know about a fit ---------------------------------------------------------
#: Fewer labelled test rows than this for a task, and its test metric cannot tell two models apart.
MIN_TEST_ROWS = 30
#: A classification task with fewer labelled training rows per class than this looks like an
#: identifier or a number read as a category.
MIN_ROWS_PER_CLASS = 3.0
#: A best epoch in this last fraction of the epoch cap, in a run that reached the cap, may be cut short.
CAP_FRACTION = 0.1


def _labelled(data: Any, task: str) -> int:
    """Rows of a split with at least one label of ``task``."""
    return int(data.masks[task].reshape(len(data), -1).any(dim=1).sum()) if len(data) else 0


def cut_short(best_epoch: int, epochs_run: int, cap: int, patience: int, stopped_early: bool) -> bool:
    """Whether a task's best epoch (0-based) came so late in a run that ended at the epoch cap
    that more epochs would likely have helped: in the last ``CAP_FRACTION`` of the cap and less
    than ``patience`` epochs before it (early stopping had not yet given up on it)."""
    if stopped_early or epochs_run < cap:
        return False
    window = min(patience, max(1, math.ceil(CAP_FRACTION * cap)))
    return best_epoch + 1 > cap - window


def late_best_epochs(model: Any) -> dict[str, int]:
    """The main tasks of one trained model whose best epoch (1-based) may have been cut short."""
    s, cfg = model.summary, model.train_config
    if cfg.get("early_stopping") == "none":
        return {}
    cap, patience = int(cfg["epochs"]), int(cfg["patience"])
    best = {t.name: s["best_epoch"].get(t.name, -1) for t in model.tasks if not t.auxiliary}
    return {t: b + 1 for t, b in best.items() if cut_short(b, s["epochs_run"], cap, patience, s["stopped_early"])}


def epoch_warnings(models: Mapping[str, Any]) -> list[str]:
    """One "best epoch 97 of 100" line per task, naming every run (MTL, STL) it happened in."""
    late: dict[str, list[str]] = {}
    caps: dict[str, int] = {}
    for name, model in models.items():
        for task, epoch in late_best_epochs(model).items():
            late.setdefault(task, []).append(f"{epoch} of {model.train_config['epochs']} ({name.upper()})")
            caps[task] = max(caps.get(task, 0), int(model.train_config["epochs"]))
    return [f"task '{task}': best epoch {', '.join(where)}: training may have been cut short; "
            f"try --epochs {3 * caps[task]}" for task, where in late.items()]


def data_warnings(prepared: Any) -> list[str]:
    """Test splits too small to decide, and classification tasks with nearly one row per class."""
    out = []
    for enc in (e for e in prepared.encoders if not e.task.auxiliary):
        name = enc.task.name
        n_test = _labelled(prepared.test, name)
        if n_test < MIN_TEST_ROWS:
            out.append(f"task '{name}': only {n_test} labelled test rows: its test metrics are too noisy to "
                       f"decide between models (use more rows, or polytask compare --seeds 5)")
        if enc.task.kind == "multiclass":
            n_train, k = _labelled(prepared.train, name), enc.output_dim
            if n_train < MIN_ROWS_PER_CLASS * k:
                out.append(f"task '{name}': {k} classes for {n_train} labelled training rows: is it really a "
                           f"category? (a number read as text, or an identifier; --kind {name}=regression)")
    return out


def fit_warnings(report: Any) -> list[str]:
    """Every warning of a :class:`~polytask.workflow.FitReport`, one line each."""
    return data_warnings(report.prepared) + epoch_warnings(report.models)


def early_stopping_lines(report: Any) -> list[str]:
    """Per run: how it ended and each main task's best epoch (1-based)."""
    lines = []
    for name, model in report.models.items():
        s, cfg = model.summary, model.train_config
        if s["stopped_early"]:
            how = f"stopped early at epoch {s['epochs_run']} of {cfg['epochs']} (no improvement for {cfg['patience']} epochs)"
        else:
            how = f"ran all {s['epochs_run']} of {cfg['epochs']} epochs"
        best = ", ".join(f"{t.name} {s['best_epoch'].get(t.name, -1) + 1}" for t in model.tasks if not t.auxiliary)
        lines.append(f"{name.upper()} {how}; early stopping {cfg['early_stopping'].replace('_', ' ')}, best epoch: {best}")
    return lines
