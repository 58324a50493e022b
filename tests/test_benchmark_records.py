"""Every p-value of docs/BENCHMARKS.md can be recomputed from the committed per-seed values
(docs/benchmarks/results.json), and the document is exactly what those values render to."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from polytask.compare.stats import holm
from polytask_lab.suite import recompute, render_from_results

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "benchmarks" / "results.json"
@pytest.fixture(scope="module")
def saved() -> dict:  # type: ignore[type-arg]
    return json.loads(RESULTS.read_text(encoding="utf-8"))


def test_every_p_value_recomputes_from_the_per_seed_values(saved: dict) -> None:  # type: ignore[type-arg]
    assert recompute(saved["results"]) == saved["results"]


def test_the_p_values_by_an_independent_route(saved: dict) -> None:  # type: ignore[type-arg]
    """scipy's one-sample t-test for the plain p-value, the corrected statistic by hand, Holm over
    the protocol's family by hand: the same numbers as the file."""
    family = []
    for record in saved["results"].values():
        for point in record["points"].values():
            for c in point["candidates"].values():
                if "delta_m" not in c:
                    continue
                v = np.asarray(c["delta_m"]["values"], dtype=float)
                assert c["delta_m"]["test"]["p_value"] == pytest.approx(stats.ttest_1samp(v, 0.0).pvalue, rel=1e-9)
                t = v.mean() / np.sqrt((1 / len(v) + point["test_train_ratio"]) * v.var(ddof=1))
                corrected = 2 * stats.t.sf(abs(t), len(v) - 1)
                assert c["delta_m"]["test"]["corrected_p_value"] == pytest.approx(corrected, rel=1e-9)
                expected = corrected if point["overlap"] else c["delta_m"]["test"]["p_value"]
                assert c["delta_m"]["p"] == pytest.approx(expected, rel=1e-9)
                if record["protocol"]:
                    family.append(c)
    np.testing.assert_allclose([c["delta_m"]["holm_p"] for c in family], holm([c["delta_m"]["p"] for c in family]))


def test_the_document_renders_from_the_committed_values() -> None:
    notes = (ROOT / "benchmarks" / "suite_notes_full.md").read_text(encoding="utf-8")
    docs = ROOT / "docs" / "BENCHMARKS.md"
    assert render_from_results(RESULTS, docs, notes) == docs.read_text(encoding="utf-8")
