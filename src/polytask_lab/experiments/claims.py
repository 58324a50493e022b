"""What each experiment expects, the paper's figure where there is one, and whether the saved
result shows it: the rows of the summary table of docs/EXPERIMENTS.md, computed from the JSON.

A comparison *holds* when the paired test's Holm-adjusted p-value (within its family) is below
0.05 in the expected direction; an expected *no difference* holds when it is not significant.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polytask_lab.render import sig

ALPHA = 0.05
Saved = dict[str, Any]
Claim = dict[str, Any]


def _test(saved: Saved, a: str, b: str) -> dict[str, Any] | None:
    return next((t for t in saved["paired_tests"] if t["a"] == a and t["b"] == b), None)


def relation(saved: Saved, a: str, b: str) -> str:
    """``better``, ``worse`` or ``same``: arm a against arm b at Holm p < 0.05."""
    t = _test(saved, a, b)
    if t is None or t["holm_p"] is None or not t["holm_p"] < ALPHA:
        return "same"
    better = t["mean_diff"] < 0 if saved["lower_is_better"] else t["mean_diff"] > 0
    return "better" if better else "worse"


def compared(saved: Saved, a: str, b: str, expected: str, paper: str | None = None) -> Claim:
    """A claim row: arm a is expected ``better``/``worse``/``same`` than arm b, or ``not better``
    (the same or worse: a control that should remove a gain)."""
    t = _test(saved, a, b)
    ours = "not run" if t is None else (f"{sig(t['mean_diff'], 3)} ({int(t['wins'])}/{int(t['n'])} trials, "
                                        f"Holm p = {sig(t['holm_p'], 2)})")
    word = {"better": "better than", "worse": "worse than", "same": "no different from",
            "not better": "not better than"}[expected]
    found = None if t is None else relation(saved, a, b)
    holds = None if found is None else found != "better" if expected == "not better" else found == expected
    return {"claim": f"{a} {word} {b}", "paper": paper, "ours": ours, "holds": holds}


def mechanism(saved: Saved) -> list[Claim]:
    return [compared(saved, "MTL", "STL", "better"), compared(saved, "MTL", "MTL, aux shuffled", "better"),
            compared(saved, "MTL, aux shuffled", "STL", "not better")]


def parity(saved: Saved) -> list[Claim]:
    return [compared(saved, "MTL", "STL", "better", "MTL better (thesis, no figure used here)")]


def transfer(saved: Saved) -> list[Claim]:
    return [compared(saved, "frozen trunk", "scratch", "better"), compared(saved, "fine-tune x0.1", "scratch", "better")]


def peaks(saved: Saved) -> list[Claim]:
    return [compared(saved, arm, "STL 64 ReLU", "better", "no such figure (our own experiment)")
            for arm in ("MTL 64 tanh", "MTL 64 ReLU", "MTL 256 ReLU")]


def peaks_sharing(saved: Saved) -> list[Claim]:
    rows = [compared(saved, f"any feature, {k + 1} common", f"any feature, {k} common", "better",
                     "rises (Figure 5)") for k in range(3)]
    rows += [compared(saved, f"test must match, {k} common", f"any feature, {k} common", "better",
                      "above (Figure 5)") for k in (1, 2, 3)]
    zero = saved["summary"].get("any feature, 0 common")
    if zero is not None:
        rows.append({"claim": "sharing of tasks with no common variable below 0", "paper": "small negative",
                     "ours": f"{sig(zero['mean'], 3)} +- {sig(zero['ci'], 2)} (95 % interval)",
                     "holds": zero["ci"] is not None and zero["mean"] + zero["ci"] < 0})
    return rows


def inputs_as_outputs(saved: Saved) -> list[Claim]:
    from polytask_lab.experiments.inputs_as_outputs import sensitivity_table

    paper = saved["extra"]["paper"]
    rows = []
    for row in sensitivity_table(saved):
        if (row["protocol"], row["code"]) not in (("classic", "binary"), ("modern", "binary")):
            continue
        out, inp = row["OUT vs STL"], row["IN vs STL"]
        rows.append({"claim": f"{row['protocol']} protocol, binary code: IN no different from STL, OUT better "
                              "than STL and than its shuffle",
                     "paper": f"STL {paper['STL']}, IN {paper['IN']} (ns), OUT {paper['OUT']} (p = {paper['OUT vs STL p']})",
                     "ours": f"STL {sig(row['means']['STL'], 3)}, IN {sig(row['means']['IN'], 3)} (Holm p = "
                             f"{sig(inp['holm_p'], 2)}), OUT {sig(row['means']['OUT'], 3)} (Holm p = "
                             f"{sig(out['holm_p'], 2)})", "holds": row["pattern"]})
    shown = [f"{r['protocol']}/{r['code']}" for r in sensitivity_table(saved) if r["pattern"]]
    rows.append({"claim": "the paper's pattern under some code and protocol", "paper": "binary codes only",
                 "ours": ", ".join(shown) if shown else "under none", "holds": bool(shown)})
    return rows


def horizons(saved: Saved) -> list[Claim]:
    from polytask_lab.experiments.horizons import corrected_horizon_tests, growth_tests

    rows = []
    for g in growth_tests(saved):
        per_h = [t for t in corrected_horizon_tests(saved) if t["series"] == g["series"] and
                 t["condition"] == g["condition"]]
        changes = "RMSE change " + ", ".join(f"h{t['h']} {100 * t['change']:+.1f}%{' *' if t['holm_p'] < ALPHA else ''}"
                                             for t in per_h)
        rows.append({"claim": f"{g['series']}, {g['condition']} data: the gain of MTL grows with the horizon",
                     "paper": "robot sensing, error change of MTL against STL at 1, 2, 4, 8: +2.7%, -4.1%, "
                              "-9.7% *, -10.9% *",
                     "ours": f"{changes}; slope of the gain on log2 h {sig(g['mean_slope'], 2)} (Holm p = "
                             f"{sig(g['holm_p'], 2)})", "holds": g["grows"]})
    return rows


def grouping(saved: Saved) -> list[Claim]:
    exact = saved["extra"]["exact"]
    n = len(saved["extra"]["problems"])
    rows = [compared(saved, "combined", s, "better") for s in ("tag", "cosine", "sharing")]
    rows.append({"claim": "the default recovers the clusters", "paper": None,
                 "ours": f"exactly in {round(exact['combined'] * n)}/{n} problems (TAG {round(exact['tag'] * n)}/{n})",
                 "holds": exact["combined"] >= 0.8})
    return rows


CLAIMS: dict[str, Callable[[Saved], list[Claim]]] = {
    "inputs-as-outputs": inputs_as_outputs, "parity": parity, "amplification": mechanism,
    "attribute-selection": mechanism, "eavesdropping": mechanism, "representation-bias": mechanism,
    "peaks-sharing": peaks_sharing, "peaks": peaks, "transfer": transfer, "horizons": horizons, "grouping": grouping,
}
