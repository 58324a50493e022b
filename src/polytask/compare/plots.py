"""PNG figures of a comparison summary (matplotlib, Agg backend, returned as bytes)."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from polytask.evaluate import HIGHER_IS_BETTER, relative_delta  # noqa: E402


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _nan0(v: Any) -> float:
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _relative_runs(entry: dict[str, Any], stl: dict[str, Any], task: str, metric: str) -> list[float]:
    """Per run, the candidate's signed relative difference from STL on ``metric`` (positive:
    better than STL), paired run by run."""
    values = entry["tasks"][task][metric]["values"]
    base = stl["tasks"][task][metric]["values"]
    return [relative_delta(metric, _nan(v), _nan(b)) for v, b in zip(values, base)]


def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


def _mean_std(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return float("nan"), float("nan")
    return float(np.mean(finite)), float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0


def _zoomed_limits(lows: list[float], highs: list[float], include_zero: bool = True) -> tuple[float, float]:
    """Axis limits around the data (and 0, the STL line), with a margin: the differences fill
    the panel instead of sitting on a bar that starts at 0 of the metric."""
    pts = [v for v in lows + highs if not math.isnan(v)] + ([0.0] if include_zero else [])
    if not pts:
        return -1.0, 1.0
    lo, hi = min(pts), max(pts)
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi), 1e-3) * 0.5
    return lo - pad, hi + pad


def per_task_bars(summary: dict[str, Any], title: str = "") -> bytes:
    """:func:`per_task_figure` as PNG bytes."""
    return _png(per_task_figure(summary, title))


def per_task_figure(summary: dict[str, Any], title: str = "") -> Any:
    """One panel per task: each candidate's headline metric relative to STL's, in percent,
    signed so that right of 0 is better than STL (``relative_delta``), mean +- std over the
    paired runs. The axis is zoomed to the differences; the legend sits outside the panels."""
    headline = summary["problem"]["headline_metrics"]
    cands = {k: v for k, v in summary["candidates"].items() if "tasks" in v and k != "stl"}
    stl = summary["candidates"].get("stl")
    tasks = list(headline)
    cols = min(len(tasks), 3) or 1
    rows = max(1, math.ceil(len(tasks) / cols))
    names = list(cands)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 2.6, max(1.6, 0.32 * len(names) + 1.1) * rows),
                             squeeze=False)
    colors = plt.get_cmap("tab10")
    y = np.arange(len(names))
    for i, task in enumerate(tasks):
        ax = axes[i // cols][i % cols]
        metric = headline[task]
        stats = [_mean_std(_relative_runs(cands[n], stl, task, metric)) if stl else (math.nan, math.nan) for n in names]
        means = [100 * m for m, _ in stats]
        stds = [100 * (0.0 if math.isnan(s) else s) for _, s in stats]
        ax.barh(y, [0.0 if math.isnan(m) else m for m in means], xerr=stds, capsize=2,
                color=[colors(k % 10) for k in range(len(names))])
        ax.axvline(0.0, color="black", linewidth=0.9)
        ax.set_xlim(*_zoomed_limits([m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)]))
        ax.set_yticks(y, names if i % cols == 0 else [""] * len(names), fontsize=8)
        ax.invert_yaxis()
        base = stl["tasks"][task][metric]["mean"] if stl else math.nan
        arrow = "higher" if metric in HIGHER_IS_BETTER else "lower"
        ax.set_title(f"{task}: {metric} ({arrow} is better)\nSTL = {_nan0(base):.4g}", fontsize=9)
        ax.set_xlabel("% better than STL", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    for j in range(len(tasks), rows * cols):
        axes[j // cols][j % cols].axis("off")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors(k % 10)) for k in range(len(names))]
    fig.legend(handles, names, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=8, frameon=False,
               title="candidate", title_fontsize=8)
    fig.suptitle(title or "per task: headline metric relative to STL (mean +- std over runs; right of 0 is better)",
                 fontsize=10)
    fig.tight_layout()
    return fig


def delta_m_bars(summary: dict[str, Any], title: str = "") -> bytes:
    """Delta-m against STL per candidate (mean +- std over runs); positive is better than STL.
    A star marks a significant paired test."""
    cands = {k: v for k, v in summary["candidates"].items() if "delta_m" in v}
    names = list(cands)
    means = [_nan0(cands[n]["delta_m"]["mean"]) * 100 for n in names]
    stds = [_nan0(cands[n]["delta_m"]["std"]) * 100 for n in names]
    colors = ["tab:green" if m > 0 else "tab:red" for m in means]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.1 * len(names) + 2), 3.5))
    ax.bar(range(len(names)), means, yerr=stds, capsize=3, color=colors)
    for i, n in enumerate(names):
        if cands[n]["delta_m"]["verdict"] != "no significant difference":
            top = means[i] + stds[i] if means[i] >= 0 else means[i] - stds[i]
            ax.annotate("*", (i, top), ha="center", va="bottom" if means[i] >= 0 else "top", fontsize=14)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_ylim(*_zoomed_limits([m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)]))
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("delta-m vs STL (%)")
    ax.set_title(title or "delta-m against STL (mean +- std; * significant)")
    return _png(fig)


def all_plots(summary: dict[str, Any], prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}per_task": per_task_bars(summary), f"{prefix}delta_m": delta_m_bars(summary)}
