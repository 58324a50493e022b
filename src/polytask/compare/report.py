"""Markdown tables of a comparison summary and the files a comparison writes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from polytask.evaluate import HIGHER_IS_BETTER
from polytask.serialization import atomic_write_bytes, atomic_write_json, atomic_write_text, clean_json


def _num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.{digits}g}"


def _p(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v:.2g}" if v >= 1e-3 else f"{v:.1e}"


def headline_table(summary: dict[str, Any]) -> str:
    """Tasks down, candidates across: the headline metric as mean +- std over runs; a mark says
    whether the paired test finds the candidate significantly better (+) or worse (-) than STL."""
    headline = summary["problem"]["headline_metrics"]
    cands = {k: v for k, v in summary["candidates"].items() if "tasks" in v}
    head = "| task (metric) | " + " | ".join(cands) + " |"
    sep = "| --- |" + " --- |" * len(cands)
    rows = [head, sep]
    for task, metric in headline.items():
        arrow = "higher" if metric in HIGHER_IS_BETTER else "lower"
        cells = []
        for entry in cands.values():
            stats = entry["tasks"][task][metric]
            mark = ""
            test = entry.get("paired_tests", {}).get(task)
            if test is not None:
                mark = {"significantly better": " (+)", "significantly worse": " (-)"}.get(test["verdict"], "")
            cells.append(f"{_num(stats['mean'])} +- {_num(stats['std'], 2)}{mark}")
        rows.append(f"| {task} ({metric}, {arrow} is better) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def candidate_table(summary: dict[str, Any]) -> str:
    """One row per candidate: validation and test delta-m against STL, the plain, corrected and
    Holm-adjusted p-values, verdict, size and time."""
    rows = [
        "| candidate | validation delta-m vs STL | test delta-m vs STL (mean +- std) | paired t p | corrected p | Holm p | verdict "
        "| tasks +/- | parameters | train seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, e in summary["candidates"].items():
        if "tasks" not in e:
            rows.append(f"| {name} | | n/a | | | | {e.get('note', '')} | | | |")
            continue
        secs = e["seconds"]["mean"]
        params = "n/a (trees)" if e["parameters"] is None else f"{e['parameters']:,}"
        if "delta_m" in e:
            dm = e["delta_m"]
            rows.append(
                f"| {name} | {e['val_delta_m']['mean'] * 100:+.2f}% | {dm['mean'] * 100:+.2f}% +- {dm['std'] * 100:.2f} | "
                f"{_p(dm['test']['p_value'])} | {_p(dm['test']['corrected_p_value'])} | {_p(dm['holm_p'])} | "
                f"{dm['verdict']} | {e['tasks_better']}/{e['tasks_worse']} | {params} | {_num(secs, 3)} |"
            )
        else:
            rows.append(f"| {name} | reference | reference | | | | | | {params} | {_num(secs, 3)} |")
    return "\n".join(rows)


DELTA_M_HELP = (
    "Delta-m is the mean, over the main tasks, of each task's relative change in its headline metric "
    "against STL (one network per task), signed so that positive is better: (STL - candidate) / STL for a "
    "metric where lower is better (RMSE), (candidate - STL) / STL where higher is better (ROC-AUC, accuracy). "
    "+2% reads: on average over the tasks, 2% better than STL; every task counts the same, whatever the scale "
    "of its metric (Maninis et al. 2019).",
    "A mean over runs is not enough on its own: the +- is the spread over runs, the p-value says whether the "
    "mean difference stands out from that spread (a paired test over the same splits), and the per-task marks "
    "(+)/(-) show where a positive delta-m hides a task that got worse.",
    "In the per-task figure each panel is one task: bars right of the line are better than STL, by that many "
    "percent of STL's value; the axis is zoomed to the differences.",
)


def _recommendation(summary: dict[str, Any]) -> list[str]:
    """The plain recommendation when the summary has one, else the headline verdict."""
    rec = summary.get("recommendation")
    if isinstance(rec, dict) and rec.get("text"):
        return [f"**Recommendation: {str(rec['text']).rstrip('.')}.**", "", *(summary["verdict"][:1])]
    if isinstance(rec, str) and rec:
        return [f"**Recommendation: {rec.rstrip('.')}.**", "", *(summary["verdict"][:1])]
    return [f"**{summary['verdict'][0]}**"] if summary["verdict"] else []


def _verdict_bullets(summary: dict[str, Any]) -> list[str]:
    """The verdict lines after the headline, without a repeated recommendation line."""
    return [f"- {v}" for v in summary["verdict"][1:] if not v.startswith("recommendation:")]


def _flat(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.items() if v not in (None, {}, [], ()))


def how_made(summary: dict[str, Any], heading: str = "##") -> list[str]:
    """The command that produced the report and every setting it ran with."""
    p, st = summary["problem"], summary["settings"]
    command = summary.get("command") or ""
    lines = [f"{heading} How this report was made", ""]
    lines += (["```bash", command, "```"] if command else ["Made from Python (no command line); the settings:"])
    lines += ["", "| setting | value |", "| --- | --- |",
              f"| data | {p['name']}: {p['runs']} {p['scheme']}, rows per run "
              + ", ".join(f"{k} {v}" for k, v in p["rows"].items()) + " |",
              f"| tasks | {', '.join(t['name'] + ' (' + t['kind'] + (', auxiliary' if t['auxiliary'] else '') + ')' for t in p['tasks'])} |",
              f"| network | {_flat(st['network'])} |",
              f"| training | {_flat(st['training'])} |",
              f"| test | {st['test']}, alpha = {st['alpha']} |"]
    return lines


def markdown(summary: dict[str, Any], title: str | None = None, images: dict[str, str] | None = None,
             heading_level: int = 1) -> str:
    """The whole report as Markdown; ``images`` maps a caption to a relative PNG path. A
    standalone report (``heading_level`` 1) ends with how to read delta-m and how it was made
    (command and settings); a report embedded in a larger document (the benchmark suite's)
    leaves those to that document."""
    h = "#" * heading_level
    p = summary["problem"]
    title = title or f"polytask compare: {p['name']}"
    lines = [
        f"{h} {title}",
        "",
        *_recommendation(summary),
        "",
        f"{len([t for t in p['tasks'] if not t['auxiliary']])} tasks, {p['runs']} {p['scheme']}, "
        "rows per run: " + ", ".join(f"{k} {v}" for k, v in p["rows"].items()) + ". Test metrics; each candidate sees the same splits; model selection "
        f"on validation rows only. {summary['settings']['test']} (alpha = {summary['settings']['alpha']}).",
        "",
        headline_table(summary),
        "",
        "(+)/(-): significantly better/worse than STL on that task (the verdict's test over runs, Holm-adjusted "
        "over the candidate's tasks).",
        "",
        candidate_table(summary),
        "",
        *_verdict_bullets(summary),
    ]
    for caption, path in (images or {}).items():
        lines += ["", f"![{caption}]({path})"]
    if heading_level == 1:
        lines += ["", "## How to read delta-m", ""]
        for paragraph in DELTA_M_HELP:
            lines += [paragraph, ""]
        lines += how_made(summary)
    return "\n".join(lines) + "\n"


def write_outputs(summary: dict[str, Any], runs: list[dict[str, Any]], out: Path, plots: dict[str, bytes],
                  html: str) -> dict[str, Path]:
    """Write comparison.json (summary plus every run), report.md, the PNGs and report.html."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "comparison.json", "markdown": out / "report.md", "html": out / "report.html"}
    atomic_write_json(paths["json"], clean_json({**summary, "runs": runs}))
    images = {}
    for name, data in plots.items():
        atomic_write_bytes(out / f"{name}.png", data)
        paths[name] = out / f"{name}.png"
        images[name.replace("_", " ")] = f"{name}.png"
    atomic_write_text(paths["markdown"], markdown(summary, images=images))
    atomic_write_text(paths["html"], html)
    return paths
