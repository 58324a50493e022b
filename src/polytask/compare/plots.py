"""PNG figures of a comparison summary (matplotlib, Agg backend, returned as bytes)."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from polytask.evaluate import HIGHER_IS_BETTER  # noqa: E402


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _nan0(v: Any) -> float:
    return 0.0 if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def per_task_bars(summary: dict[str, Any], title: str = "") -> bytes:
    """One group of bars per task (its headline metric), one bar per candidate, error bars = std
    over runs. Values are divided by STL's mean for the task, so tasks on different scales share
    an axis (1 = STL)."""
    headline = summary["problem"]["headline_metrics"]
    cands = {k: v for k, v in summary["candidates"].items() if "tasks" in v}
    tasks = list(headline)
    stl = cands.get("stl")
    width = 0.8 / max(len(cands), 1)
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 0.3 * len(tasks) * max(1, len(cands)) + 3)), 4))
    x = np.arange(len(tasks))
    for i, (name, entry) in enumerate(cands.items()):
        means, stds = [], []
        for t in tasks:
            m = entry["tasks"][t][headline[t]]
            ref = _nan0(stl["tasks"][t][headline[t]]["mean"]) if stl else 1.0
            ref = ref if ref != 0 else 1.0
            means.append(_nan0(m["mean"]) / abs(ref))
            stds.append(_nan0(m["std"]) / abs(ref))
        ax.bar(x + (i - (len(cands) - 1) / 2) * width, means, width, yerr=stds, capsize=2, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    labels = [f"{t}\n{headline[t]} ({'up' if headline[t] in HIGHER_IS_BETTER else 'down'})" for t in tasks]
    ax.set_xticks(x, labels, rotation=45 if len(tasks) > 6 else 0, ha="right" if len(tasks) > 6 else "center",
                  fontsize=7 if len(tasks) > 6 else 9)
    ax.set_ylabel("headline metric / STL mean")
    ax.set_title(title or "per-task headline metric relative to STL (mean +- std over runs)")
    ax.legend(fontsize=7, ncol=min(len(cands), 4))
    return _png(fig)


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
            ax.annotate("*", (i, means[i]), ha="center", va="bottom", fontsize=14)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("delta-m vs STL (%)")
    ax.set_title(title or "delta-m against STL (mean +- std; * significant)")
    return _png(fig)


def all_plots(summary: dict[str, Any], prefix: str = "") -> dict[str, bytes]:
    return {f"{prefix}per_task": per_task_bars(summary), f"{prefix}delta_m": delta_m_bars(summary)}
