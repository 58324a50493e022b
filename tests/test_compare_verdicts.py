"""Verdicts that survive selection and multiple comparisons: the candidate is chosen on the
validation rows, p-values are Holm-adjusted, the corrected test decides when runs share
training rows, and the recommendation says what to use in words (also when STL wins)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.multitest import multipletests

from polytask.compare.candidates import Candidate, CandidateRun, build_candidates, run_candidate
from polytask.compare.runner import Comparison, Problem, RunPlan, RunRecord, compare, training_overlap
from polytask.compare.stats import holm, one_sample_test
from polytask.compare.summary import summarize
from polytask.data.prepare import prepare
from polytask.errors import PolytaskError
from polytask.synthetic import related_tasks
from polytask.tasks import Task
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec


def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        p = rng.uniform(0, 0.2, size=int(rng.integers(1, 9)))
        np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1])
    assert math.isnan(holm([0.01, float("nan")])[1]) and holm([0.01, float("nan")])[0] == 0.01  # NaN not counted


def test_disjoint_pools_share_no_training_row_and_resampled_splits_do() -> None:
    plan = RunPlan("disjoint", 4, val_fraction=0.25, test_fraction=0.2, pool_size=40, base_seed=3)
    splits = plan.splits(300)
    assert not training_overlap(splits)
    assert all(np.array_equal(s.test, splits[0].test) for s in splits) and len(splits[0].test) == 60
    used = [np.concatenate([s.train, s.val]) for s in splits]
    assert all(len(u) == 40 and len(s.val) == 10 for u, s in zip(used, splits))
    assert len(np.unique(np.concatenate(used))) == 160 and not set(np.concatenate(used)) & set(splits[0].test)
    official = np.arange(250, 300)
    assert np.array_equal(RunPlan("disjoint", 2).splits(300, official)[1].test, official)
    assert training_overlap(RunPlan("seeds", 3).splits(300))
    limited = RunPlan("seeds", 3, pool_size=50).splits(300)
    assert all(len(s.train) + len(s.val) == 50 for s in limited) and training_overlap(limited)
    with pytest.raises(PolytaskError, match="4 disjoint pools of 100 rows need 400"):
        RunPlan("disjoint", 4, pool_size=100).splits(300)


def fake_comparison(test_dm: dict[str, list[float]], val_dm: dict[str, list[float]], overlap: bool = True) -> Comparison:
    """A comparison whose candidates have the given per-run delta-m on test and validation rows
    (one regression task, STL RMSE 1.0, a candidate's RMSE 1 - delta-m)."""
    names = ["stl", *test_dm]
    cands = [Candidate("stl")] + [Candidate("mtl", n.split(":")[1].split("+")[0], n.split("+")[1]) if n.startswith("mtl")
                                  else Candidate(n) for n in test_dm]
    n_runs = len(next(iter(test_dm.values())))
    runs = []
    for r in range(n_runs):
        results = {"stl": CandidateRun({"y": {"rmse": 1.0}}, {"y": {"rmse": 1.0}}, 10, 1.0)}
        for n in test_dm:
            results[n] = CandidateRun({"y": {"rmse": 1.0 - val_dm[n][r]}}, {"y": {"rmse": 1.0 - test_dm[n][r]}}, 10, 1.0)
        runs.append(RunRecord(r, r, {"train": 100, "val": 20, "test": 25}, {k: results[k] for k in names}))
    task = Task("y", metrics=("rmse",))
    return Comparison(Problem(pd.DataFrame({"y": [0.0]}), ["y"]), RunPlan("seeds", n_runs), cands, [task], runs,
                      NetworkSpec(), TrainConfig(), overlap=overlap)


def test_the_headline_names_the_mtl_candidate_chosen_on_validation_rows() -> None:
    # mtl:hps+ew is best on the test rows, mtl:mmoe+ew on the validation rows: the headline
    # must name mmoe (choosing on the test rows would flatter MTL)
    test = {"mtl:hps+ew": [0.30, 0.32, 0.31, 0.29, 0.33], "mtl:mmoe+ew": [0.05, 0.06, 0.04, 0.05, 0.06]}
    val = {"mtl:hps+ew": [0.01, 0.0, 0.01, 0.0, 0.01], "mtl:mmoe+ew": [0.2, 0.2, 0.2, 0.2, 0.2]}
    s = summarize(fake_comparison(test, val))
    assert "(mtl:mmoe+ew)" in s["verdict"][0]
    assert s["recommendation"]["candidate"] == "mtl:mmoe+ew"
    assert s["recommendation"]["action"] == "use MTL with mmoe + ew"


def test_the_corrected_test_decides_when_runs_overlap_and_holm_adjusts_over_candidates() -> None:
    dm = [0.04, 0.06, 0.05, 0.03, 0.07, 0.05]
    comp = fake_comparison({"mtl:hps+ew": dm, "hgb": [0.0, 0.01, -0.01, 0.0, 0.02, -0.02]},
                           {"mtl:hps+ew": dm, "hgb": [0.0] * 6})
    s = summarize(comp)
    entry = s["candidates"]["mtl:hps+ew"]["delta_m"]
    ratio = 25 / 100
    corrected = one_sample_test(dm, ratio)
    assert s["settings"]["corrected"] and entry["p"] == pytest.approx(corrected.corrected_p_value)
    hgb_p = s["candidates"]["hgb"]["delta_m"]["p"]
    np.testing.assert_allclose([entry["holm_p"], s["candidates"]["hgb"]["delta_m"]["holm_p"]],
                               multipletests([entry["p"], hgb_p], method="holm")[1])
    plain = summarize(fake_comparison({"mtl:hps+ew": dm}, {"mtl:hps+ew": dm}, overlap=False))
    assert not plain["settings"]["corrected"]
    assert plain["candidates"]["mtl:hps+ew"]["delta_m"]["p"] == pytest.approx(one_sample_test(dm).p_value)
    forced = summarize(comp, test="plain")["candidates"]["mtl:hps+ew"]["delta_m"]["p"]
    assert forced == pytest.approx(one_sample_test(dm).p_value) and forced < entry["p"]


def test_holm_can_take_away_a_raw_win() -> None:
    # five candidates with the same borderline gain: each raw p is below 0.05, Holm's is not
    dm = [0.05, -0.01, 0.04, 0.03, -0.01, 0.06, 0.0, 0.03]  # paired t p = 0.043
    names = [f"mtl:hps+b{i}" for i in range(5)]
    s = summarize(fake_comparison({n: dm for n in names}, {n: dm for n in names}, overlap=False))
    raw = s["candidates"][names[0]]["delta_m"]["p"]
    assert raw < 0.05 and s["candidates"][names[0]]["delta_m"]["holm_p"] >= 0.05
    assert all(s["candidates"][n]["delta_m"]["verdict"] == "no significant difference" for n in names)
    assert s["recommendation"]["action"] == "use STL" and "not significantly different" in s["recommendation"]["text"]


@pytest.mark.parametrize("case, action", [
    ("stl best on validation", "use STL"),
    ("gbdt confirmed", "use gradient boosting (one model per task)"),
    ("mtl not confirmed", "use STL"),
])
def test_recommendation_in_words(case: str, action: str) -> None:
    up, flat = [0.10, 0.12, 0.11, 0.09, 0.13, 0.1], [0.0, 0.01, -0.01, 0.0, 0.01, -0.01]
    if case == "stl best on validation":
        test, val = {"mtl:hps+ew": up, "hgb": up}, {"mtl:hps+ew": [-0.05] * 6, "hgb": [-0.01] * 6}
    elif case == "gbdt confirmed":
        test, val = {"mtl:hps+ew": flat, "hgb": up}, {"mtl:hps+ew": [0.01] * 6, "hgb": [0.1] * 6}
    else:
        test, val = {"mtl:hps+ew": flat, "hgb": flat}, {"mtl:hps+ew": [0.1] * 6, "hgb": [0.0] * 6}
    rec = summarize(fake_comparison(test, val, overlap=False))["recommendation"]
    assert rec["action"] == action
    assert rec["evidence"] and all("Holm p" in line for line in rec["evidence"])  # the evidence, also when STL wins
    if case == "stl best on validation":
        assert "no candidate beats STL on the validation rows" in rec["text"]


def test_a_tuning_grid_is_chosen_on_validation_loss_for_stl_and_mtl_alike() -> None:
    frame, names = related_tasks(n_rows=300, n_features=6, n_tasks=2, seed=1)
    prepared = prepare(frame, names, seed=0)
    grid = ({"lr": 1e-7}, {"lr": 1e-2})  # the first cannot learn anything in a few epochs
    cands = build_candidates(["hps"], ["ew"], [], grid=grid)
    assert all(c.grid == grid for c in cands)
    for cand in cands:
        run = run_candidate(cand, prepared, NetworkSpec(trunk=(8,)), TrainConfig(epochs=15, batch_size=32), seed=0)
        assert run.chosen == {"lr": 1e-2} and run.val_loss is not None
    with pytest.raises(PolytaskError, match="unknown setting 'nope'"):
        build_candidates(["hps"], ["ew"], [], grid=({"nope": 1},))


def test_a_real_comparison_on_disjoint_pools_uses_the_plain_test() -> None:
    frame, names = related_tasks(n_rows=400, n_features=5, n_tasks=2, seed=2)
    comp = compare(Problem(frame, names), build_candidates(["hps"], ["ew"], ["linear"]),
                   RunPlan("disjoint", 3, pool_size=60, test_fraction=0.4), NetworkSpec(trunk=(8,)),
                   TrainConfig(epochs=3, batch_size=32))
    s = summarize(comp)
    assert not comp.overlap and not s["problem"]["overlap"] and "share no training row" in s["settings"]["test"]
    assert s["problem"]["rows"] == {"train": 51, "val": 9, "test": 160}
    assert s["recommendation"]["text"].startswith("use ")
