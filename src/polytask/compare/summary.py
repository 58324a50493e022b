"""From raw runs to the numbers a reader needs: per-task mean and std of every metric, delta-m
per run against STL with its paired test, per-task paired tests on the headline metric,
parameter counts, training time, and a verdict line."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from polytask.compare.runner import Comparison
from polytask.compare.stats import PairedTest, mean_std, one_sample_test, paired_test
from polytask.evaluate import delta_m
from polytask.evaluate import HIGHER_IS_BETTER
from polytask.tasks import Task

#: The headline metric of each task kind: the one delta-m, the per-task tests and the plots use.
HEADLINE: dict[str, str] = {"regression": "rmse", "binary": "roc_auc", "multiclass": "accuracy", "multilabel": "macro_f1"}
#: Significance level of the verdict.
ALPHA = 0.05


def headline_metric(task: Task) -> str:
    name = HEADLINE[task.kind]
    return name if name in task.metric_names else task.metric_names[0]


def _verdict_word(test: PairedTest, alpha: float = ALPHA, corrected: bool = False) -> str:
    p = test.corrected_p_value if corrected else test.p_value
    if math.isnan(p) or p >= alpha:
        return "no significant difference"
    return "significantly better" if test.mean_difference > 0 else "significantly worse"


def summarize(comparison: Comparison, alpha: float = ALPHA, corrected: bool = False) -> dict[str, Any]:
    """A JSON-able summary of ``comparison`` (see the module docstring).

    The verdicts use the plain paired t-test's p-value, or with ``corrected=True`` the
    Nadeau-Bengio corrected one (both are always reported)."""
    main = [t for t in comparison.tasks if not t.auxiliary]
    headline = {t.name: headline_metric(t) for t in main}
    runs = comparison.runs
    ratio = float(np.mean([r.rows["test"] / max(r.rows["train"], 1) for r in runs]))
    stl_name = "stl"
    out: dict[str, Any] = {
        "problem": {
            "name": comparison.problem.name,
            "tasks": [t.to_dict() for t in comparison.tasks],
            "headline_metrics": headline,
            "scheme": comparison.plan.scheme,
            "runs": len(runs),
            "rows": runs[0].rows if runs else {},
            "test_train_ratio": ratio,
        },
        "settings": {"network": {**comparison.spec.layers().settings(), **comparison.spec.options},
                     "training": comparison.config.to_dict(), "alpha": alpha,
                     "corrected": corrected,
                     "test": "two-sided paired t-test over runs (scipy.stats.ttest_rel); the Nadeau-Bengio "
                             "corrected resampled t-test is reported beside it"
                             + ("; the verdict uses the corrected p-value" if corrected else
                                "; the verdict uses the plain paired t-test's p-value")},
        "candidates": {},
    }
    for cand in comparison.candidates:
        name = cand.name
        results = [r.results[name] for r in runs]
        skipped = [res.note for res in results if res.note]
        entry: dict[str, Any] = {**cand.to_dict(), "note": skipped[0] if skipped else ""}
        if skipped and not any(res.test for res in results):
            out["candidates"][name] = entry
            continue
        per_task: dict[str, Any] = {}
        for task in main:
            metrics = {}
            for metric in task.metric_names:
                values = [res.test.get(task.name, {}).get(metric, float("nan")) for res in results]
                m, s = mean_std(values)
                metrics[metric] = {"mean": m, "std": s, "values": values}
            per_task[task.name] = metrics
        entry["tasks"] = per_task
        params = [res.parameters for res in results if res.parameters is not None]
        entry["parameters"] = int(np.mean(params)) if params else None
        entry["seconds"] = dict(zip(("mean", "std"), mean_std([res.seconds for res in results])))
        if name != stl_name:
            stl = [r.results[stl_name] for r in runs]
            dms = [delta_m(res.test, base.test, headline) for res, base in zip(results, stl)]
            dm_mean, dm_std = mean_std(dms)
            dm_test = one_sample_test(dms, ratio)
            entry["delta_m"] = {"mean": dm_mean, "std": dm_std, "values": dms, "test": dm_test.to_dict(),
                                "verdict": _verdict_word(dm_test, alpha, corrected)}
            tests = {}
            for task in main:
                metric = headline[task.name]
                sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
                a = [sign * res.test.get(task.name, {}).get(metric, float("nan")) for res in results]
                b = [sign * base.test.get(task.name, {}).get(metric, float("nan")) for base in stl]
                t = paired_test(a, b, ratio)
                tests[task.name] = {"metric": metric, **t.to_dict(), "verdict": _verdict_word(t, alpha, corrected)}
            entry["paired_tests"] = tests
            entry["tasks_better"] = sum(v["verdict"] == "significantly better" for v in tests.values())
            entry["tasks_worse"] = sum(v["verdict"] == "significantly worse" for v in tests.values())
        out["candidates"][name] = entry
    out["verdict"] = verdict_lines(out)
    return out


def _p_text(p: float | None) -> str:
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"


def _fmt_dm(entry: dict[str, Any]) -> str:
    dm = entry["delta_m"]
    t = dm["test"]
    return (f"delta-m {dm['mean'] * 100:+.2f}% +- {dm['std'] * 100:.2f} "
            f"(paired t-test p = {_p_text(t['p_value'])}, corrected p = {_p_text(t['corrected_p_value'])})")


def verdict_lines(summary: dict[str, Any]) -> list[str]:
    """The headline first (the best MTL candidate against STL), then one line per candidate."""
    cands = {k: v for k, v in summary["candidates"].items() if "delta_m" in v and not math.isnan(v["delta_m"]["mean"])}
    n = summary["problem"]["runs"]
    unit = summary["problem"]["scheme"]
    lines = []
    mtl = {k: v for k, v in cands.items() if v["family"] == "mtl"}
    if mtl:
        best = max(mtl, key=lambda k: mtl[k]["delta_m"]["mean"])
        e = mtl[best]
        word = {"significantly better": "MTL WINS", "significantly worse": "MTL LOSES"}.get(
            e["delta_m"]["verdict"], "NO SIGNIFICANT DIFFERENCE")
        lines.append(
            f"{word}: best MTL ({best}) against STL over {n} {unit}: {_fmt_dm(e)}; "
            f"{e['tasks_better']} task(s) significantly better, {e['tasks_worse']} significantly worse "
            f"of {len(e['paired_tests'])}."
        )
    if cands:
        top = max(cands, key=lambda k: cands[k]["delta_m"]["mean"])
        if cands[top]["delta_m"]["mean"] > 0:
            lines.append(f"best candidate overall against STL: {top} ({_fmt_dm(cands[top])}).")
        else:  # never name a candidate worse than STL as the best
            lines.append(f"no candidate beats STL on average (best: {top}, {_fmt_dm(cands[top])}).")
    for k, v in cands.items():
        lines.append(f"{k}: {v['delta_m']['verdict']} than STL, {_fmt_dm(v)}.")
    for k, v in summary["candidates"].items():
        if v.get("note"):
            lines.append(f"{k}: {v['note']}.")
    return lines
