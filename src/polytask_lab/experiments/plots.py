"""The figure of each experiment, drawn from its saved result (the JSON), so a figure can be
redrawn from the committed record alone.

The default is a box plot of each arm's per-trial scores with the trials joined across arms;
experiments with many arms (a condition x arm layout) have their own: grouped bars with 95 %
intervals (inputs-as-outputs), Caruana's two sharing curves (peaks-sharing), the relative gain by
horizon (horizons) and the adjusted Rand index by source (grouping). Figures are drawn on a bare
:class:`matplotlib.figure.Figure` with the Agg canvas (no global pyplot state).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np

Saved = dict[str, Any]


def _n(value: Any) -> float:
    """A saved number (a missing one is stored as null) as a float."""
    return float("nan") if value is None else float(value)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def box_plot(saved: Saved) -> bytes:
    arms = list(saved["scores"])
    fig = _figure(1.8 + 1.6 * len(arms), 4.2)
    ax = fig.add_subplot()
    data = [saved["scores"][a] for a in arms]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(arms) + 1), arms, rotation=15)
    n = min(len(v) for v in data) if data else 0
    for i in range(n):
        ax.plot(range(1, len(arms) + 1), [v[i] for v in data], color="grey", alpha=0.25, lw=0.8)
    better = "lower" if saved["lower_is_better"] else "higher"
    ax.set_ylabel(f"{saved['metric']} ({better} is better)")
    ax.set_title(f"{saved['experiment']} ({n} trials)")
    return _png(fig)


def inputs_as_outputs(saved: Saved) -> bytes:
    from polytask_lab.experiments.inputs_as_outputs import ARMS, arm_name

    conditions = saved["extra"]["conditions"]
    fig = _figure(12, 4.5)
    ax = fig.add_subplot()
    width = 0.2
    for k, arm in enumerate(ARMS):
        stats = [saved["summary"][arm_name(p, c, arm)] for p, c in conditions]
        ax.bar(np.arange(len(conditions)) + (k - 1.5) * width, [_n(s["mean"]) for s in stats], width,
               yerr=[_n(s["ci"]) for s in stats], capsize=2, label=arm)
    ax.axhline(saved["extra"]["paper"]["STL"], color="black", lw=0.8, ls="--", label="paper: STL (binary code)")
    ax.set_xticks(range(len(conditions)), [f"{p}\n{c}" for p, c in conditions], fontsize=8)
    ax.set_ylabel("test RMSE of F1 (mean, 95 % interval)")
    ax.set_title("inputs-as-outputs: code x protocol")
    ax.legend(fontsize=8, ncol=5)
    return _png(fig)


def peaks_sharing(saved: Saved) -> bytes:
    fig = _figure(5.5, 4.0)
    ax = fig.add_subplot()
    for line, marker in (("any feature", "o"), ("test must match", "s")):
        ks = [k for k in range(4) if f"{line}, {k} common" in saved["summary"]]
        stats = [saved["summary"][f"{line}, {k} common"] for k in ks]
        ax.errorbar(ks, [_n(s["mean"]) for s in stats], yerr=[_n(s["ci"]) for s in stats], marker=marker, capsize=3,
                    label=line)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(4))
    ax.set_xlabel("variables in common")
    ax.set_ylabel("hidden-unit sharing (rank correlation)")
    ax.set_title(f"Peaks: sharing by relatedness ({saved['protocol']['trials']} trials, 95 % intervals)")
    ax.legend()
    return _png(fig)


def horizons(saved: Saved) -> bytes:
    from polytask_lab.experiments.horizons import CONDITIONS, HORIZONS, SERIES, arm_name

    fig = _figure(6.0, 4.0)
    ax = fig.add_subplot()
    for series in SERIES:
        for condition in CONDITIONS:
            mtl = np.array([saved["scores"][arm_name(series, condition, "MTL", h)] for h in HORIZONS], dtype=float)
            stl = np.array([saved["scores"][arm_name(series, condition, "STL", h)] for h in HORIZONS], dtype=float)
            gain = 100 * (stl - mtl) / stl
            err = 1.96 * gain.std(axis=1, ddof=1) / np.sqrt(gain.shape[1]) if gain.shape[1] > 1 else np.zeros(len(HORIZONS))
            ax.errorbar(np.log2(HORIZONS), gain.mean(axis=1), yerr=err, marker="o", capsize=3,
                        label=f"{series}, {condition}")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(np.log2(HORIZONS), [str(h) for h in HORIZONS])
    ax.set_xlabel("horizon h")
    ax.set_ylabel("RMSE gain of MTL over STL (%)")
    ax.set_title("horizons: (STL - MTL) / STL, mean over blocks")
    ax.legend(fontsize=8)
    return _png(fig)


def grouping(saved: Saved) -> bytes:
    fig = _figure(6.0, 3.8)
    ax = fig.add_subplot()
    sources = list(saved["summary"])
    ax.bar(range(len(sources)), [_n(saved["summary"][s]["mean"]) for s in sources],
           yerr=[_n(saved["summary"][s]["ci"]) for s in sources], capsize=3, label="adjusted Rand index")
    ax.plot(range(len(sources)), [saved["extra"]["exact"][s] for s in sources], "kD", label="exact recovery rate")
    ax.set_xticks(range(len(sources)), sources, rotation=20)
    ax.set_ylim(-0.2, 1.05)
    ax.set_title(f"grouping: {len(saved['extra']['problems'])} clustered problems")
    ax.legend(fontsize=8)
    return _png(fig)


PLOTS: dict[str, Callable[[Saved], bytes]] = {"inputs-as-outputs": inputs_as_outputs, "peaks-sharing": peaks_sharing,
                                             "horizons": horizons, "grouping": grouping}


def plot(saved: Saved) -> bytes:
    """The PNG of a saved result (its own figure, or the box plot)."""
    return PLOTS.get(saved["experiment"], box_plot)(saved)
