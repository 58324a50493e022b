"""Every number of docs/EXPERIMENTS.md comes from the committed per-trial records: the
statistics of each record recompute from its scores, by the lab's code and by an independent
route (scipy, statsmodels), and the document re-renders from the records and the notes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from polytask_lab.experiments.common import reanalyse
from polytask_lab.experiments.document import SECTIONS, experiments_markdown

ROOT = Path(__file__).resolve().parents[1]
RECORDS = ROOT / "docs" / "experiments"
SAVED = sorted(RECORDS.glob("*.json"))


def test_every_experiment_of_the_document_has_a_record() -> None:
    assert {p.stem for p in SAVED} == set(SECTIONS)


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_statistics_recompute_from_the_per_trial_scores(path: Path) -> None:
    saved = json.loads(path.read_text(encoding="utf-8"))
    assert reanalyse(saved) == saved


@pytest.mark.parametrize("path", SAVED, ids=lambda p: p.stem)
def test_p_values_by_an_independent_route(path: Path) -> None:
    saved = json.loads(path.read_text(encoding="utf-8"))
    families: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for t in saved["paired_tests"]:
        a, b = np.asarray(saved["scores"][t["a"]]), np.asarray(saved["scores"][t["b"]])
        if len(a) > 1 and np.any(a != b):
            assert t["t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-9)
        else:
            assert t["t_p"] is None
        families.setdefault(t["family"], []).append(t)
    for members in families.values():
        defined = [t for t in members if t["t_p"] is not None]
        if defined:
            adjusted = multipletests([t["t_p"] for t in defined], method="holm")[1]
            np.testing.assert_allclose([t["holm_p"] for t in defined], adjusted, rtol=1e-12)
    for arm, s in saved["summary"].items():
        v = np.asarray(saved["scores"][arm], dtype=float)
        assert s["mean"] == pytest.approx(v.mean()) and s["n"] == len(v)
        if len(v) > 1:
            half = stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
            assert s["ci"] == pytest.approx(half)


def test_the_document_re_renders_from_the_records() -> None:
    text = experiments_markdown(RECORDS, ROOT / "benchmarks" / "experiment_notes")
    assert text == (ROOT / "docs" / "EXPERIMENTS.md").read_text(encoding="utf-8")
