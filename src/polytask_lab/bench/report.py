"""The benchmark's JSON rendered as ``docs/PERFORMANCE.md`` (template ``performance.md.j2``).

Everything in the document comes from the JSON of one run, except the hand-written analysis
(``benchmarks/notes.md``), which is included verbatim so the reasons for a missed target live
next to the figures without being typed into the generated part. This module only arranges the
run's figures into the tables' rows; the words and the layout are the template's.
"""

from __future__ import annotations

import statistics
from typing import Any

from polytask_lab.render import fixed, render


def _comparisons(doc: dict[str, Any], **match: Any) -> list[dict[str, Any]]:
    return [c for c in doc["comparisons"] if all(c.get(k) == v for k, v in match.items())]


def _first(doc: dict[str, Any], **match: Any) -> dict[str, Any] | None:
    found = _comparisons(doc, **match)
    return found[0] if found else None


def _target_rows(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Per target: met/missed counts with the median and worst value; and the missed points."""
    rows = []
    for name, counts in doc["target_summary"].items():
        values = [t["value"] for c in doc["comparisons"] for t in c["targets"] if t["target"] == name and t["value"] is not None]
        op = next(t["op"] for c in doc["comparisons"] for t in c["targets"] if t["target"] == name)
        worst = (max(values) if op == "<=" else min(values)) if values else None
        median = sorted(values)[len(values) // 2] if values else None
        rows.append({"name": name, **counts, "median": median, "worst": worst})
    missed: dict[str, list[str]] = {}
    for c in doc["comparisons"]:
        for t in c["targets"]:
            if t["met"] is False:
                where = f"{c['method']}{'' if c['mode'] in (None, 'exact') else ' (repr.)'} {c['net']}/T={c['n_tasks']}"
                missed.setdefault(t["target"], []).append(f"{where}: {fixed(t['value'])}")
    return rows, missed


def _method_tables(doc: dict[str, Any], nets: list[str], counts: list[int]) -> dict[str, Any]:
    """Rows of the loss-weighting, exact-mode and representation-mode tables."""
    grid = [(n, t) for n in nets for t in counts]
    loss = sorted({c["method"] for c in doc["comparisons"] if c["family"] == "loss"})
    grad = sorted({c["method"] for c in doc["comparisons"] if c["family"] == "gradient"})
    exact = [{"net": n, "n_tasks": t, "judged": t in (10, 30),
              "rows": [c for m in grad if (c := _first(doc, net=n, n_tasks=t, method=m, mode="exact"))]}
             for n, t in grid]
    representation = [{"method": m, "cells": cells} for m in grad
                      if any(cells := [_first(doc, net=n, n_tasks=t, method=m, mode="representation") for n, t in grid])]
    return {
        "loss": [{"method": m, "limit": 1.3 if m == "famo" else 1.1,
                  "cells": [(_first(doc, net=n, n_tasks=t, method=m, mode=None) or {}).get("vs_ew") for n, t in grid]}
                 for m in loss],
        "exact": [section for section in exact if section["rows"]],
        "has_exact": any(c["mode"] == "exact" for c in doc["comparisons"]),
        "representation": representation,
        "has_representation": any(c["mode"] == "representation" for c in doc["comparisons"]),
    }


def render_markdown(doc: dict[str, Any], notes: str | None = None) -> str:
    """The performance document for one benchmark run."""
    nets = list(dict.fromkeys(p["net"] for p in doc["points"]))
    counts = list(dict.fromkeys(p["n_tasks"] for p in doc["points"]))
    target_rows, missed = _target_rows(doc)
    control = [{"net": n, "cells": [next((p["control_vs_ew"] for p in doc["points"] if p["net"] == n and p["n_tasks"] == t), None)
                                    for t in counts]} for n in nets]
    errors = [{"c": c, "impl": impl, "error": e.replace("|", "/")[:160]} for c in doc["comparisons"] for impl, e in c["errors"].items()]
    return render("performance.md.j2", doc=doc, m=doc["machine"], s=doc["settings"], command=doc.get("command") or "polytask bench",
                  counts=counts, count_cols=[f"T={t}" for t in counts], grid_cols=[f"{n} T={t}" for n in nets for t in counts],
                  first_points=[p for p in doc["points"] if p["n_tasks"] == counts[0]],
                  targets=target_rows, missed=missed, control=control, errors=errors,
                  notes=(notes or "").strip(), basic=_basic(doc.get("basic")), data_path=doc.get("data_path"),
                  precision=_precision(doc.get("precision")), **_method_tables(doc, nets, counts))


#: The basic path's candidates, in the columns' order.
BASIC_COLUMNS = ("minimal (control)", "minimal, fused Adam", "pt.fit", "LibMTL step", "MLPRegressor", "CLI (polytask fit)")


def _with_range(candidate: dict[str, Any] | None) -> str:
    """``median [lowest, highest]`` of a candidate's per-round ratios to the minimal loop."""
    if not candidate or candidate.get("vs_minimal") is None:
        return "–"
    low_high = candidate.get("vs_minimal_range")
    spread = f" [{low_high[0]:.2f}, {low_high[1]:.2f}]" if low_high else ""
    return f"{candidate['vs_minimal']:.2f}{spread}"


def _basic(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """Rows of the basic-path tables (None when the run had no basic-path section)."""
    if not section:
        return None
    rows = [{"p": p, "cells": [_with_range(p["candidates"].get(c)) for c in BASIC_COLUMNS]} for p in section["points"]]
    counts = sorted({p["n_tasks"] for p in section["points"]})
    epochs = [{"rows": r, "cells": [next((p["candidates"]["pt.fit"]["per_epoch_s"] for p in section["points"]
                                          if p["rows"] == r and p["n_tasks"] == t), None) for t in counts],
               "minimal": [next((p["candidates"]["minimal"]["per_epoch_s"] for p in section["points"]
                                 if p["rows"] == r and p["n_tasks"] == t), None) for t in counts]}
              for r in sorted({p["rows"] for p in section["points"]})]
    return {**section, "columns": BASIC_COLUMNS, "rows": rows, "counts": counts, "count_cols": [f"T={t}" for t in counts],
            "epoch_rows": epochs}


#: The precision section's candidates, in the columns' order.
PRECISION_COLUMNS = ("fp32 (control)", "bf16", "compile")


def _ratio_with_range(candidate: dict[str, Any], key: str) -> str:
    low, high = candidate[f"{key}_range"]
    return f"{candidate[key]:.2f} [{low:.2f}, {high:.2f}]"


def _precision(section: dict[str, Any] | None) -> dict[str, Any] | None:
    """Rows of the precision table (None when no precision run was merged)."""
    if not section:
        return None
    rows = [{"method": m["method"], "fp32_s": statistics.median(m["candidates"]["fp32"]["epoch_cpu_s"]),
             "cells": [_ratio_with_range(m["candidates"][c], "vs_fp32") for c in PRECISION_COLUMNS],
             "bf16_distance": m["candidates"]["bf16"]["distance_to_fp32"],
             "compile_distance": m["candidates"]["compile"]["distance_to_fp32"],
             "compile_first": m["candidates"]["compile"]}
            for m in section["methods"]]
    return {**section, "columns": PRECISION_COLUMNS, "table": rows}
