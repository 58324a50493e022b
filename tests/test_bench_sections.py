"""Sections of the performance document measured by their own runs (the basic path, the data
path, precision and compilation): each merges into an existing document's JSON, renders with
its own stamp and command, and leaves the other sections as they were. No timing is asserted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from polytask.errors import PolytaskError
from polytask_lab.bench.precision import run_precision
from polytask_lab.bench.sections import Stamp, merge_section

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def document(tmp_path: Path) -> Path:
    """A copy of the committed performance document and its JSON."""
    for suffix in (".md", ".json"):
        shutil.copy(ROOT / "docs" / f"PERFORMANCE{suffix}", tmp_path / f"PERFORMANCE{suffix}")
    return tmp_path / "PERFORMANCE.md"


def test_a_precision_run_merges_with_its_stamp_and_keeps_the_other_sections(document: Path) -> None:
    before = json.loads(document.with_suffix(".json").read_text())
    section = Stamp(["benchmarks/precision.py", "--rounds", "1"]).finish(run_precision(1, methods=(("ew", {}),)))
    merge_section(document, "precision", section, None)
    after = json.loads(document.with_suffix(".json").read_text())
    assert after["comparisons"] == before["comparisons"] and after.get("basic") == before.get("basic")
    text = document.read_text()
    assert "## Mixed precision and compilation" in text
    assert "python benchmarks/precision.py --rounds 1" in text  # the stamp, and the command under Reproduce
    assert text.count("benchmarks/precision.py --rounds 1") == 2
    ew = after["precision"]["methods"][0]["candidates"]
    assert ew["fp32 (control)"]["distance_to_fp32"] == 0.0  # identical trainers took identical steps
    assert 0 < ew["bf16"]["distance_to_fp32"] < 0.2  # bf16 moved the weights a little, not wildly
    assert ew["compile"]["distance_to_fp32"] < 1e-4  # a compiled graph computes the same steps


def test_a_data_path_section_renders_its_targets(document: Path) -> None:
    speed = {name: {"median": m, "min": m, "max": m, "rounds": [m]} for name, m in
             (("control", 1.0), ("read_table", 1.1), ("read + prepare", 1.7), ("pyarrow", 1.6), ("parquet", 0.7), ("predict", 0.6))}
    memory = [{"case": "fit", "bytes_per_cell": 12.5, "cells": 10, "peak_growth_bytes": 125},
              {"case": "predict", "bytes_per_cell": 20.0, "cells": 10, "peak_growth_bytes": 200}]
    section = Stamp(["benchmarks/data_path.py"]).finish({"rows": 1000, "rounds": 1, "speed": speed, "memory_rows": 10,
                                                          "memory": memory})
    merge_section(document, "data_path", section, None)
    text = document.read_text()
    assert "| read + prepare <= 1.5x `pd.read_csv` | 1.70 | 1.50 | ✗ |" in text
    assert "| predict >= half the bare network's rows per second | 0.60 | 0.50 | ✓ |" in text
    assert "| peak RSS of `fit` <= 16 bytes per cell | 12.5 | 16.0 | ✓ |" in text
    assert "| peak RSS of `predict` <= 16 bytes per cell | 20.0 | 16.0 | ✗ |" in text


def test_merging_needs_the_document_and_a_known_section(tmp_path: Path, document: Path) -> None:
    with pytest.raises(PolytaskError, match="cannot read the benchmark document"):
        merge_section(tmp_path / "absent.md", "basic", {}, None)
    with pytest.raises(PolytaskError, match="unknown section 'speed'"):
        merge_section(document, "speed", {}, None)


def test_the_basic_path_script_merges_a_quick_run(document: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import basic_path

    args = ["--rows", "2000", "--tasks", "2", "--rounds", "1", "--cli-rows", "0", "--out", str(document),
            "--notes", str(document.parent / "none.md")]
    threads = torch.get_num_threads()
    try:
        assert basic_path.main(args) == 0
    finally:
        torch.set_num_threads(threads)
    doc = json.loads(document.with_suffix(".json").read_text())
    assert [(p["rows"], p["n_tasks"]) for p in doc["basic"]["points"]] == [(2000, 2)]
    assert doc["basic"]["run"]["command"] == "OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/basic_path.py " + " ".join(args)
    section = document.read_text().split("## The basic path", 1)[1].split("\n## ", 1)[0]
    assert "Measured by `OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/basic_path.py --rows 2000" in section
    assert "| 2,000 | 2 |" in section


def test_the_revision_is_marked_only_when_files_outside_the_documents_changed(tmp_path: Path) -> None:
    import subprocess

    from polytask_lab.bench.suite import git_revision

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "PERFORMANCE.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    clean = git_revision(str(tmp_path))
    assert clean is not None and "uncommitted" not in clean
    (tmp_path / "docs" / "PERFORMANCE.md").write_text("a section merged\n")
    assert git_revision(str(tmp_path)) == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert git_revision(str(tmp_path)) == clean + " (with uncommitted changes)"
