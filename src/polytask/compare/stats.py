"""Statistics of a comparison: summaries over seeds or folds, delta-m per run, paired tests.

Paired test. For each candidate and task we have one primary-metric value per run (seed or
fold) for the candidate and for STL, measured on the same split. The test is the two-sided
paired t-test on the differences ``d_r = M_r - M_r,STL`` (``scipy.stats.ttest_rel``):
``t = mean(d) / (sd(d) / sqrt(R))`` with ``R - 1`` degrees of freedom. Its assumptions: the
differences are independent across runs and roughly normal. Runs resample the training rows,
so the training sets overlap and the runs are not independent; the plain test then
underestimates the variance (Nadeau and Bengio 2003, "Inference for the generalization error").
We therefore also report their *corrected resampled t-test*, which inflates the variance term to
``(1/R + n_test/n_train) sd(d)^2``; it is very conservative when the test rows outnumber the
training rows (little-data problems), so the verdict uses the plain test unless asked otherwise
and both p-values are always reported.
For delta-m the same tests run on the per-run delta-m values against 0 (a paired test of the
candidate against STL, since delta-m is already a paired difference).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from polytask.evaluate import HIGHER_IS_BETTER


@dataclass(frozen=True)
class PairedTest:
    """A paired comparison over runs: mean difference, t statistics and two-sided p-values."""

    n: int
    mean_difference: float
    t: float
    p_value: float
    corrected_t: float
    corrected_p_value: float

    def to_dict(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "mean_difference": self.mean_difference,
            "t": self.t,
            "p_value": self.p_value,
            "corrected_t": self.corrected_t,
            "corrected_p_value": self.corrected_p_value,
        }


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value) ignoring NaN."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if v.size == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def paired_test(
    candidate: Sequence[float], baseline: Sequence[float], test_train_ratio: float = 0.0
) -> PairedTest:
    """Two-sided paired t-test of ``candidate - baseline`` over runs (pairs with a NaN dropped).

    ``test_train_ratio`` (n_test / n_train of one run) enables the Nadeau-Bengio correction:
    ``t = mean(d) / sqrt((1/R + n_test/n_train) var(d))``; with 0 it equals the plain test.
    A zero variance gives t = +-inf (p = 0) when the mean is non-zero and NaN otherwise.
    """
    a = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if a.shape != b.shape:
        raise ValueError("paired test needs the same number of runs on both sides")
    keep = ~(np.isnan(a) | np.isnan(b))
    d = a[keep] - b[keep]
    n = int(d.size)
    if n < 2:
        return PairedTest(n, float(d.mean()) if n else float("nan"), *(float("nan"),) * 4)
    mean, var = float(d.mean()), float(d.var(ddof=1))
    if var == 0.0:
        if mean == 0.0:
            return PairedTest(n, mean, *(float("nan"),) * 4)
        t_inf = math.copysign(math.inf, mean)
        return PairedTest(n, mean, t_inf, 0.0, t_inf, 0.0)
    plain = sps.ttest_rel(a[keep], b[keep])
    t_plain, p_plain = float(plain.statistic), float(plain.pvalue)
    t_corr = mean / math.sqrt((1.0 / n + test_train_ratio) * var)
    p_corr = float(2 * sps.t.sf(abs(t_corr), df=n - 1))
    return PairedTest(n, mean, t_plain, p_plain, t_corr, p_corr)


def one_sample_test(values: Sequence[float], test_train_ratio: float = 0.0) -> PairedTest:
    """The paired test of per-run differences that are already formed (e.g. delta-m) against 0."""
    v = np.asarray(values, dtype=float)
    return paired_test(v, np.zeros_like(v), test_train_ratio)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979, "A simple sequentially rejective multiple
    test procedure"): with the m defined p-values sorted, ``p_(1) <= ... <= p_(m)``,

        adj_(i) = min(1, max_{k <= i} (m - k + 1) p_(k)),

    so rejecting every ``adj < alpha`` controls the family-wise error rate at ``alpha``. A NaN
    p-value (a test that could not be run) stays NaN and does not count in ``m``."""
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size
    running = 0.0
    for rank, i in enumerate(defined[np.argsort(p[defined], kind="stable")]):
        running = max(running, (m - rank) * p[i])
        out[i] = min(1.0, running)
    return [float(v) for v in out]


def better_direction(metric: str) -> int:
    """+1 when higher is better for ``metric``, -1 otherwise."""
    return 1 if metric in HIGHER_IS_BETTER else -1
