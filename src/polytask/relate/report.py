"""Files written by ``polytask relate`` and ``polytask group``: matrices as CSV and JSON,
heatmaps (PNG, with task names), curves over training, and a plain-text summary.

Everything is written into a staging directory and swapped into place
(:func:`polytask.io.staged_directory`): a failed run leaves an existing output untouched.
Figures are drawn on a bare :class:`matplotlib.figure.Figure` with the Agg canvas, so no
global pyplot state is touched.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polytask.errors import PolytaskError
from polytask.io import staged_directory
from polytask.relate.choose import GroupReport
from polytask.relate.matrix import TaskMatrix
from polytask.relate.measure import Relatedness
from polytask.serialization import atomic_write_bytes, atomic_write_json, atomic_write_text

RELATE_MARKER = "relatedness.json"
GROUP_MARKER = "groups.json"


def check_output(directory: Path, marker: str) -> None:
    """Refuse to replace a file, or a non-empty directory that this command did not write."""
    if directory.exists() and not directory.is_dir():
        raise PolytaskError(f"'{directory}' exists and is not a directory")
    if directory.exists() and any(directory.iterdir()) and not (directory / marker).exists():
        raise PolytaskError(f"'{directory}' exists, is not empty and holds no {marker}; refusing to overwrite it")


def heatmap_png(matrix: TaskMatrix) -> bytes:
    """A heatmap of ``matrix`` with task names on both axes (rows: source, columns: target)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = len(matrix.task_names)
    size = max(4.0, 0.45 * t + 2.5)
    fig = Figure(figsize=(size + 1.0, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    values = np.array(matrix.values, dtype=float)
    shown = values.copy()
    np.fill_diagonal(shown, np.nan)
    finite = shown[np.isfinite(shown)]
    limit = float(np.max(np.abs(finite))) if finite.size and np.max(np.abs(finite)) > 0 else 1.0
    image = ax.imshow(np.ma.masked_invalid(shown), cmap="RdBu_r", vmin=-limit, vmax=limit)
    ax.set_xticks(range(t), labels=matrix.task_names, rotation=90 if t > 6 else 45, ha="center" if t > 6 else "right")
    ax.set_yticks(range(t), labels=matrix.task_names)
    if not matrix.symmetric:
        ax.set_xlabel("onto task (target)")
        ax.set_ylabel("from task (source)")
    if t <= 12:
        for i in range(t):
            for j in range(t):
                if i != j and math.isfinite(values[i, j]):
                    ax.text(j, i, f"{values[i, j]:.2g}", ha="center", va="center", fontsize=7)
    ax.set_title(matrix.name)
    fig.colorbar(image, ax=ax, shrink=0.8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def curve_png(curve: pd.DataFrame, title: str) -> bytes:
    """Per-epoch curves of every task pair (at most 45 drawn; the CSV holds all)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for column in list(curve.columns)[:45]:
        ax.plot(curve.index, curve[column], linewidth=0.8, label=column if len(curve.columns) <= 10 else None)
    ax.axhline(0.0, color="black", linewidth=0.5)
    ax.set_xlabel("epoch")
    ax.set_title(title)
    if len(curve.columns) <= 10:
        ax.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _write_matrix(directory: Path, matrix: TaskMatrix) -> None:
    atomic_write_text(directory / f"{matrix.name}.csv", matrix.frame.to_csv())
    atomic_write_json(directory / f"{matrix.name}.json", matrix.to_dict())
    atomic_write_bytes(directory / f"{matrix.name}.png", heatmap_png(matrix))


def matrix_summary(matrix: TaskMatrix, top: int = 5) -> list[str]:
    """Lines naming the most and least related pairs of a matrix."""
    names, v = matrix.task_names, matrix.values
    t = len(names)
    if matrix.symmetric:
        pairs = [(v[a, b], f"{names[a]} ~ {names[b]}") for a in range(t) for b in range(a + 1, t) if math.isfinite(v[a, b])]
    else:
        pairs = [(v[a, b], f"{names[a]} -> {names[b]}") for a in range(t) for b in range(t) if a != b and math.isfinite(v[a, b])]
    pairs.sort(key=lambda p: -p[0])
    lines = [f"{matrix.name}: {matrix.description}"]
    if not pairs:
        return lines + ["  (no defined entries)"]
    off = np.array([p[0] for p in pairs])
    lines.append(f"  off-diagonal mean {off.mean():+.4g}, min {off.min():+.4g}, max {off.max():+.4g}")
    lines.append("  highest: " + "; ".join(f"{label} {value:+.3g}" for value, label in pairs[:top]))
    lines.append("  lowest:  " + "; ".join(f"{label} {value:+.3g}" for value, label in pairs[::-1][:top]))
    return lines


def relatedness_summary(result: Relatedness) -> str:
    lines = [f"polytask relate: {len(result.task_names)} tasks ({', '.join(result.task_names)})",
             f"training rows {result.info.get('train_rows')}, epochs run {result.info.get('epochs_run')}, "
             f"recorded every {result.info.get('every')} steps, {result.info.get('seconds', float('nan')):.1f} s", ""]
    for matrix in result.matrices.values():
        lines += matrix_summary(matrix) + [""]
    return "\n".join(lines)


def write_relatedness(result: Relatedness, directory: str | Path) -> Path:
    """Write every matrix (CSV, JSON, PNG), curves (CSV, PNG), ``relatedness.json`` and
    ``summary.txt`` into ``directory`` (replaced atomically)."""
    directory = Path(directory)
    check_output(directory, RELATE_MARKER)
    with staged_directory(directory) as staging:
        for matrix in result.matrices.values():
            _write_matrix(staging, matrix)
        for name, curve in result.curves.items():
            atomic_write_text(staging / f"{name}_curve.csv", curve.to_csv())
            atomic_write_bytes(staging / f"{name}_curve.png", curve_png(curve, f"{name} per epoch"))
        atomic_write_json(staging / RELATE_MARKER, result.to_dict())
        atomic_write_text(staging / "summary.txt", relatedness_summary(result) + "\n")
    return directory


def grouping_summary(report: GroupReport) -> str:
    g = report.grouping
    rec = report.recommendation()
    lines = [f"recommendation: {rec['text']}", *[f"  {e}" for e in rec["evidence"]], "",
             f"polytask group: {sum(len(x) for x in g.groups)} tasks into {len(g.groups)} group(s) "
             f"(at most {g.max_groups}), affinity source '{g.source}', {g.search} search",
             f"objective (mean over tasks of the affinity onto each from the rest of its group): {g.score:+.4g}", ""]
    for k, members in enumerate(g.groups, 1):
        lines.append(f"group {k}: " + ", ".join(f"{t} ({g.task_scores[t]:+.3g})" for t in members))
    lines += [""] + matrix_summary(report.matrix)
    c = report.comparison
    if c is not None:
        lines += ["", "trained on the same split (test metrics):"]
        for key in ("groups", "mtl", "stl"):
            dm = c.delta_m.get(key)
            extra = f", delta-m vs STL {dm * 100:+.2f}%" if dm is not None and math.isfinite(dm) else ""
            lines.append(f"  {key}: {c.parameters[key]} parameters{extra}")
        for row in c.rows():
            lines.append(f"  {row['task']:>12} {row['metric']:<9} groups {_f(row['groups'])}  mtl {_f(row['mtl'])}  stl {_f(row['stl'])}")
    return "\n".join(lines)


def _f(v: Any) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


def write_grouping(report: GroupReport, directory: str | Path) -> Path:
    """Write ``groups.json`` (a list of groups, each a list of task names), ``grouping.json``
    (details), the source matrix (CSV, JSON, PNG), with a comparison ``comparison.json`` and
    ``comparison.csv`` when groups were trained, and ``summary.txt``."""
    directory = Path(directory)
    check_output(directory, GROUP_MARKER)
    with staged_directory(directory) as staging:
        atomic_write_json(staging / GROUP_MARKER, report.grouping.groups)
        atomic_write_json(staging / "grouping.json", report.to_dict())
        _write_matrix(staging, report.matrix)
        if report.comparison is not None:
            atomic_write_json(staging / "comparison.json", report.comparison.to_dict())
            atomic_write_text(staging / "comparison.csv", pd.DataFrame(report.comparison.rows()).to_csv(index=False))
        atomic_write_text(staging / "summary.txt", grouping_summary(report) + "\n")
    return directory
