"""Delta-m and the paired tests of the comparison harness against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from polytask.compare.stats import mean_std, one_sample_test, paired_test
from polytask.evaluate import delta_m as run_delta_m
from polytask.evaluate import relative_delta


def test_relative_delta_signs_follow_the_metric_direction() -> None:
    # lower is better: RMSE 0.9 against 1.0 is a 10% improvement
    assert relative_delta("rmse", 0.9, 1.0) == pytest.approx(0.1)
    # higher is better: accuracy 0.72 against 0.8 is a 10% loss
    assert relative_delta("accuracy", 0.72, 0.8) == pytest.approx(-0.1)
    # a negative baseline (R^2 below 0) divides by its magnitude, so improving stays positive
    assert relative_delta("r2", -0.1, -0.2) == pytest.approx(0.5)
    assert math.isnan(relative_delta("rmse", 1.0, 0.0))


def test_delta_m_is_the_mean_over_tasks_of_the_headline_metric() -> None:
    stl = {"a": {"rmse": 2.0, "mae": 1.0}, "b": {"roc_auc": 0.80, "log_loss": 0.5}, "c": {"accuracy": 0.5}}
    mtl = {"a": {"rmse": 1.5, "mae": 5.0}, "b": {"roc_auc": 0.88, "log_loss": 0.9}, "c": {"accuracy": 0.45}}
    # by hand: a: -(1.5-2)/2 = +0.25 ; b: (0.88-0.8)/0.8 = +0.10 ; c: (0.45-0.5)/0.5 = -0.10
    expected = (0.25 + 0.10 - 0.10) / 3
    assert run_delta_m(mtl, stl, {"a": "rmse", "b": "roc_auc", "c": "accuracy"}) == pytest.approx(expected)
    # without a metric map each task's first metric is its headline
    assert run_delta_m(mtl, stl) == pytest.approx(expected)
    # the MAE and log-loss columns, much worse here, do not leak in
    assert run_delta_m(mtl, stl) > 0


def test_paired_t_test_matches_a_hand_computation() -> None:
    cand = [1.0, 3.0, 5.0, 7.0]
    base = [0.0, 1.0, 2.0, 3.0]
    # differences 1, 2, 3, 4: mean 2.5, sample variance 5/3, t = 2.5 / sqrt(5/3 / 4) = 3.8730
    t_hand = 2.5 / math.sqrt((5 / 3) / 4)
    res = paired_test(cand, base)
    assert res.n == 4 and res.mean_difference == pytest.approx(2.5)
    assert res.t == pytest.approx(t_hand)
    assert t_hand == pytest.approx(3.8730, abs=1e-4)
    # two-sided p from the t distribution with 3 degrees of freedom (about 0.0305 in tables)
    assert res.p_value == pytest.approx(2 * sps.t.sf(t_hand, 3))
    assert res.p_value == pytest.approx(0.0305, abs=5e-4)
    # with no correction the corrected test equals the plain one
    assert res.corrected_t == pytest.approx(t_hand) and res.corrected_p_value == pytest.approx(res.p_value)


def test_nadeau_bengio_correction_inflates_the_variance() -> None:
    cand, base = [1.0, 3.0, 5.0, 7.0], [0.0, 1.0, 2.0, 3.0]
    res = paired_test(cand, base, test_train_ratio=0.25)
    # t = 2.5 / sqrt((1/4 + 1/4) * 5/3) = 2.7386
    t_hand = 2.5 / math.sqrt(0.5 * 5 / 3)
    assert res.corrected_t == pytest.approx(t_hand)
    assert res.corrected_p_value == pytest.approx(2 * sps.t.sf(t_hand, 3))
    assert res.corrected_p_value > res.p_value


def test_one_sample_test_of_delta_m_and_degenerate_cases() -> None:
    res = one_sample_test([0.1, 0.12, 0.08, 0.1])
    assert res.t == pytest.approx(0.1 / (np.std([0.1, 0.12, 0.08, 0.1], ddof=1) / 2))
    assert res.p_value < 0.01
    # constant non-zero differences: infinitely significant; zero differences: undefined
    assert paired_test([2.0, 2.0], [1.0, 1.0]).corrected_p_value == 0.0
    assert math.isnan(paired_test([1.0, 1.0], [1.0, 1.0]).p_value)
    # one usable pair is not a test
    assert math.isnan(paired_test([1.0, float("nan")], [0.0, 0.0]).p_value)


def test_mean_std_uses_the_sample_standard_deviation() -> None:
    assert mean_std([1.0, 2.0, 3.0]) == (pytest.approx(2.0), pytest.approx(1.0))
    assert mean_std([4.0]) == (4.0, 0.0)
    m, s = mean_std([float("nan")])
    assert math.isnan(m) and math.isnan(s)
