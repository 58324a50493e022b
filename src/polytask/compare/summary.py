"""From raw runs to the numbers a reader needs, and a recommendation that survives selection
and multiple comparisons.

Per candidate: per-task mean and std of every metric; delta-m per run against STL on the test
rows and on the validation rows; the paired test of delta-m against 0 and of each task's
headline metric against STL's; parameter counts and training time.

Which test decides. When two runs share training rows (repeated random splits, K-fold), their
results are correlated and the plain paired t-test is too confident; the verdicts then use the
Nadeau-Bengio corrected resampled t-test (:mod:`polytask.compare.stats`). When the runs are
independent draws of a training set (``RunPlan("disjoint")``), the plain paired t-test is the
right one. Both p-values are always reported; ``test="corrected"`` or ``"plain"`` forces one.

Multiple comparisons. The delta-m p-values of all non-STL candidates form one family and are
Holm-adjusted (:func:`polytask.compare.stats.holm`); each candidate's per-task p-values form
another. A verdict ("significantly better/worse") needs the adjusted p-value below ``alpha``.

Selection. The candidate named in the headline (the best MTL candidate) and the candidate the
recommendation is about are chosen by their *validation* delta-m (mean over runs), never by the
test rows; the test rows then say whether the choice holds up.

Recommendation (:func:`recommend`): the candidate with the best validation delta-m (STL counts,
with 0), if its test delta-m is significantly positive after the adjustment; otherwise STL.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from polytask.compare.runner import Comparison
from polytask.compare.stats import PairedTest, holm, mean_std, one_sample_test, paired_test
from polytask.evaluate import HIGHER_IS_BETTER, delta_m
from polytask.tasks import Task

#: The headline metric of each task kind: the one delta-m, the per-task tests and the plots use.
HEADLINE: dict[str, str] = {"regression": "rmse", "binary": "roc_auc", "multiclass": "accuracy", "multilabel": "macro_f1"}
#: Significance level of the verdict.
ALPHA = 0.05
TESTS: tuple[str, ...] = ("auto", "corrected", "plain")
#: How the recommendation names each kind of candidate.
PLAIN_NAMES: dict[str, str] = {"stl": "STL (one network per task)", "hgb": "gradient boosting (one model per task)",
                               "linear": "a linear model (ridge or logistic regression per task)",
                               "mlp": "scikit-learn's multi-output MLP"}


def headline_metric(task: Task) -> str:
    name = HEADLINE[task.kind]
    return name if name in task.metric_names else task.metric_names[0]


def plain_name(candidate: dict[str, Any]) -> str:
    if candidate["family"] == "mtl":
        return f"MTL with {candidate['arch']} + {candidate['balancer']}"
    return PLAIN_NAMES.get(candidate["family"], candidate["name"])


def _verdict_word(mean_difference: float, p: float, alpha: float = ALPHA) -> str:
    if math.isnan(p) or p >= alpha:
        return "no significant difference"
    return "significantly better" if mean_difference > 0 else "significantly worse"


def _chosen_p(test: PairedTest, corrected: bool) -> float:
    return test.corrected_p_value if corrected else test.p_value


def _task_tests(results: list[Any], stl: list[Any], main: list[Task], headline: dict[str, str], ratio: float,
                corrected: bool, alpha: float) -> dict[str, Any]:
    """Per-task paired tests on the headline metric (signed so that positive is better), with
    Holm-adjusted p-values over the candidate's tasks."""
    tests = {}
    for task in main:
        metric = headline[task.name]
        sign = 1.0 if metric in HIGHER_IS_BETTER else -1.0
        a = [sign * res.test.get(task.name, {}).get(metric, float("nan")) for res in results]
        b = [sign * base.test.get(task.name, {}).get(metric, float("nan")) for base in stl]
        t = paired_test(a, b, ratio)
        tests[task.name] = {"metric": metric, **t.to_dict(), "p": _chosen_p(t, corrected)}
    for (name, entry), adjusted in zip(tests.items(), holm([v["p"] for v in tests.values()])):
        entry["holm_p"] = adjusted
        entry["verdict"] = _verdict_word(entry["mean_difference"], adjusted, alpha)
    return tests


def _metric_stats(results: list[Any], task: str, metric: str) -> dict[str, Any]:
    values = [res.test.get(task, {}).get(metric, float("nan")) for res in results]
    m, s = mean_std(values)
    return {"mean": m, "std": s, "values": values}


def _candidate_entry(cand: Any, comparison: Comparison, main: list[Task], headline: dict[str, str], ratio: float,
                     corrected: bool, alpha: float) -> dict[str, Any]:
    runs = comparison.runs
    results = [r.results[cand.name] for r in runs]
    skipped = [res.note for res in results if res.note]
    entry: dict[str, Any] = {**cand.to_dict(), "note": skipped[0] if skipped else ""}
    if skipped and not any(res.test for res in results):
        return entry
    entry["tasks"] = {task.name: {metric: _metric_stats(results, task.name, metric) for metric in task.metric_names}
                      for task in main}
    params = [res.parameters for res in results if res.parameters is not None]
    entry["parameters"] = int(np.mean(params)) if params else None
    entry["seconds"] = dict(zip(("mean", "std"), mean_std([res.seconds for res in results])))
    entry["chosen"] = [res.chosen for res in results]
    if cand.name == "stl":
        return entry
    stl = [r.results["stl"] for r in runs]
    dms = [delta_m(res.test, base.test, headline) for res, base in zip(results, stl)]
    val_dms = [delta_m(res.val, base.val, headline) for res, base in zip(results, stl)]
    dm_test = one_sample_test(dms, ratio)
    entry["delta_m"] = {"mean": mean_std(dms)[0], "std": mean_std(dms)[1], "values": dms, "test": dm_test.to_dict(),
                        "p": _chosen_p(dm_test, corrected)}
    entry["val_delta_m"] = {"mean": mean_std(val_dms)[0], "std": mean_std(val_dms)[1], "values": val_dms}
    entry["paired_tests"] = _task_tests(results, stl, main, headline, ratio, corrected, alpha)
    entry["tasks_better"] = sum(v["verdict"] == "significantly better" for v in entry["paired_tests"].values())
    entry["tasks_worse"] = sum(v["verdict"] == "significantly worse" for v in entry["paired_tests"].values())
    return entry


def summarize(comparison: Comparison, alpha: float = ALPHA, test: str = "auto") -> dict[str, Any]:
    """A JSON-able summary of ``comparison`` (see the module docstring). ``test``: ``auto`` (the
    corrected test when runs share training rows, else the plain one), ``corrected`` or ``plain``."""
    if test not in TESTS:
        raise ValueError(f"unknown test '{test}' (choose from {', '.join(TESTS)})")
    corrected = comparison.overlap if test == "auto" else test == "corrected"
    main = [t for t in comparison.tasks if not t.auxiliary]
    headline = {t.name: headline_metric(t) for t in main}
    runs = comparison.runs
    ratio = float(np.mean([r.rows["test"] / max(r.rows["train"], 1) for r in runs]))
    which = "the Nadeau-Bengio corrected resampled t-test" if corrected else "the plain paired t-test"
    why = ("runs share training rows" if comparison.overlap else "runs share no training row") if test == "auto" \
        else f"forced with test='{test}'"
    out: dict[str, Any] = {
        "problem": {
            "name": comparison.problem.name,
            "tasks": [t.to_dict() for t in comparison.tasks],
            "headline_metrics": headline,
            "scheme": comparison.plan.scheme,
            "runs": len(runs),
            "rows": runs[0].rows if runs else {},
            "test_train_ratio": ratio,
            "overlap": comparison.overlap,
        },
        "settings": {"network": {**comparison.spec.layers().settings(), **comparison.spec.options},
                     "training": comparison.config.to_dict(), "alpha": alpha, "corrected": corrected,
                     "test": f"verdicts use {which} ({why}), Holm-adjusted over the candidates (delta-m) and over "
                             "each candidate's tasks; both the plain (scipy.stats.ttest_rel) and the corrected "
                             "p-value are reported; candidates are chosen on validation rows"},
        "candidates": {},
    }
    for cand in comparison.candidates:
        out["candidates"][cand.name] = _candidate_entry(cand, comparison, main, headline, ratio, corrected, alpha)
    adjust_delta_m(out["candidates"], alpha)
    out["recommendation"] = recommend(out, alpha)
    out["verdict"] = verdict_lines(out)
    return out


def adjust_delta_m(candidates: dict[str, Any], alpha: float = ALPHA) -> None:
    """Holm-adjust the delta-m p-values of the candidates (one family) and set each verdict."""
    tested = [c for c in candidates.values() if "delta_m" in c]
    for entry, adjusted in zip(tested, holm([c["delta_m"]["p"] for c in tested])):
        dm = entry["delta_m"]
        dm["holm_p"] = adjusted
        dm["verdict"] = _verdict_word(dm["mean"], adjusted, alpha)


def _valid(entry: dict[str, Any], key: str) -> bool:
    return key in entry and entry[key]["mean"] is not None and not math.isnan(entry[key]["mean"])


def selected(summary: dict[str, Any], family: str | None = None) -> str | None:
    """The candidate with the best mean validation delta-m (of ``family`` when given; STL, at 0,
    takes part when no family is given); None when there is nothing to choose from."""
    pool = {k: v for k, v in summary["candidates"].items() if _valid(v, "val_delta_m") and _valid(v, "delta_m")
            and (family is None or v["family"] == family)}
    if family is None and "stl" in summary["candidates"]:
        pool["stl"] = {"val_delta_m": {"mean": 0.0}}
    if not pool:
        return None
    return max(pool, key=lambda k: pool[k]["val_delta_m"]["mean"])


def _p_text(p: float | None) -> str:
    return "n/a" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"


def evidence(entry: dict[str, Any], runs: int, unit: str) -> str:
    """Test delta-m of a candidate with its p-values, over ``runs`` runs."""
    dm = entry["delta_m"]
    t = dm["test"]
    wins = sum(v > 0 for v in dm["values"] if v is not None and not math.isnan(v))
    return (f"test delta-m {dm['mean'] * 100:+.2f}% +- {dm['std'] * 100:.2f} (better than STL in {wins}/{runs} {unit}; "
            f"paired t p = {_p_text(t['p_value'])}, corrected p = {_p_text(t['corrected_p_value'])}, "
            f"Holm p = {_p_text(dm.get('holm_p'))}); validation delta-m {entry['val_delta_m']['mean'] * 100:+.2f}%")


def recommend(summary: dict[str, Any], alpha: float = ALPHA) -> dict[str, Any]:
    """``{"action", "candidate", "text", "evidence"}``: what to use, in words, and why."""
    cands = summary["candidates"]
    n, unit = summary["problem"]["runs"], summary["problem"]["scheme"]
    pick = selected(summary)
    lines = [f"{k}: {evidence(v, n, unit)}" for k, v in cands.items() if _valid(v, "delta_m") and _valid(v, "val_delta_m")]
    if pick is None or pick == "stl":
        best = selected({**summary, "candidates": {k: v for k, v in cands.items() if k != "stl"}})
        why = "no candidate beats STL on the validation rows" if best is None else (
            f"no candidate beats STL on the validation rows (best: {best}, validation delta-m "
            f"{cands[best]['val_delta_m']['mean'] * 100:+.2f}%)")
        return {"action": "use STL", "candidate": "stl", "text": f"use STL: {why}", "evidence": lines}
    entry = cands[pick]
    dm = entry["delta_m"]
    if dm["verdict"] == "significantly better":
        action = f"use {plain_name(entry)}"
        text = (f"{action}: chosen on the validation rows, and significantly better than STL on the test rows "
                f"(delta-m {dm['mean'] * 100:+.2f}%, Holm p = {_p_text(dm['holm_p'])})")
        return {"action": action, "candidate": pick, "text": text, "evidence": lines}
    text = (f"use STL: {pick} is best on the validation rows (delta-m {entry['val_delta_m']['mean'] * 100:+.2f}%) "
            f"but on the test rows it is {dm['verdict'].replace('no significant difference', 'not significantly different from')}"
            f"{' than' if dm['verdict'] != 'no significant difference' else ''} STL "
            f"(delta-m {dm['mean'] * 100:+.2f}%, Holm p = {_p_text(dm['holm_p'])})")
    return {"action": "use STL", "candidate": "stl", "text": text, "evidence": lines}


def verdict_lines(summary: dict[str, Any]) -> list[str]:
    """The headline first (the MTL candidate chosen on validation rows, against STL), then the
    recommendation, then one line per candidate."""
    cands = {k: v for k, v in summary["candidates"].items() if _valid(v, "delta_m")}
    n, unit = summary["problem"]["runs"], summary["problem"]["scheme"]
    lines = []
    best = selected(summary, "mtl")
    if best is not None:
        e = cands[best]
        word = {"significantly better": "MTL WINS", "significantly worse": "MTL LOSES"}.get(
            e["delta_m"]["verdict"], "NO SIGNIFICANT DIFFERENCE")
        lines.append(f"{word}: MTL chosen on validation rows ({best}) against STL over {n} {unit}: "
                     f"{evidence(e, n, unit)}; {e['tasks_better']} task(s) significantly better, "
                     f"{e['tasks_worse']} significantly worse of {len(e['paired_tests'])} (Holm over tasks).")
    lines.append(f"recommendation: {summary['recommendation']['text']}.")
    for k, v in cands.items():
        lines.append(f"{k}: {v['delta_m']['verdict']} against STL, {evidence(v, n, unit)}.")
    for k, v in summary["candidates"].items():
        if v.get("note"):
            lines.append(f"{k}: {v['note']}.")
    return lines
