"""The compare report (issue 17): what its figures show, the command and settings it records,
how to read delta-m, the recommendation, and the page as a real headless browser renders it
(no console error, every image loaded). The browser test runs wherever the suite runs: .ci/run
installs Chromium from Debian's packages, and a missing Chromium fails the test, never skips it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from browser import browser_page, open_file
from polytask.cli import main
from polytask.compare import html, plots, report
from polytask.compare.summary import verdict_lines
from polytask.synthetic import related_tasks


@pytest.fixture(scope="module")
def compare_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small comparison written by the command line (mixed kinds, a missing label)."""
    root = tmp_path_factory.mktemp("cmp")
    frame, _ = related_tasks(n_rows=200, n_features=4, n_tasks=3, binary_tasks=1, seed=5)
    frame.loc[np.arange(0, 200, 7), "task1"] = np.nan
    frame.to_csv(root / "data.csv", index=False)
    out = root / "report"
    code = main(["compare", str(root / "data.csv"), "-t", "task0", "-t", "task1", "-t", "task2", "--seeds", "2",
                 "--epochs", "3", "--trunk", "8", "--baselines", "linear,mlp", "--out", str(out), "--quiet"])
    assert code == 0
    return out


def test_report_records_the_command_settings_and_how_to_read_delta_m(compare_out: Path) -> None:
    summary = json.loads((compare_out / "comparison.json").read_text())
    assert summary["command"] == (f"polytask compare {compare_out.parent / 'data.csv'} --target task0 --target task1 "
                                  f"--target task2 --trunk 8 --epochs 3 --seeds 2 --baselines linear,mlp "
                                  f"--out {compare_out} --quiet")
    md = (compare_out / "report.md").read_text()
    assert "## How to read delta-m" in md and "positive is better" in md
    assert "## How this report was made" in md and summary["command"] in md
    assert "| training | epochs=3, batch_size=64" in md and "| network | trunk=[8]" in md
    page = (compare_out / "report.html").read_text()
    assert "<pre><code>polytask compare" in page and "<h2>How to read delta-m</h2>" in page
    # the figures sit where the Markdown places them, before the reading guide
    assert page.index("data:image/png") < page.index("How to read delta-m")


def test_the_recommendation_is_rendered_when_the_summary_has_one(compare_out: Path) -> None:
    summary = json.loads((compare_out / "comparison.json").read_text())
    summary["recommendation"] = {"text": "use STL: no candidate beats it on the validation rows", "evidence": []}
    md = report.markdown(summary)
    assert md.splitlines()[2] == "**Recommendation: use STL: no candidate beats it on the validation rows.**"
    summary.pop("recommendation")
    assert report.markdown(summary).splitlines()[2] == f"**{summary['verdict'][0]}**"  # until then, the verdict


def _summary(dm: dict[str, float]) -> dict[str, Any]:
    """A summary with these test delta-m per candidate (all the fields the verdict reads)."""
    def entry(name: str, value: float) -> dict[str, Any]:
        test = {"p_value": 0.5, "corrected_p_value": 0.6}
        return {"family": "mtl" if name.startswith("mtl") else name, "note": "", "tasks_better": 0, "tasks_worse": 0,
                "paired_tests": {"y": {}}, "val_delta_m": {"mean": value, "std": 0.0, "values": [value, value]},
                "delta_m": {"mean": value, "std": 0.01, "values": [value, value], "test": test,
                            "verdict": "no significant difference", "holm_p": 0.6, "p": 0.5}}
    return {"problem": {"runs": 2, "scheme": "seeds"}, "recommendation": {"text": "use STL"},
            "candidates": {"stl": {"family": "stl", "note": ""}, **{k: entry(k, v) for k, v in dm.items()}}}


def test_best_candidate_overall_is_never_worse_than_stl() -> None:
    lines = verdict_lines(_summary({"mtl:hps+ew": -0.04, "hgb": -0.01}))
    for line in lines:
        if line.startswith("best candidate overall"):
            name = line.split(": ", 1)[1].split(" ")[0]
            assert name not in ("mtl:hps+ew", "hgb"), line
    lines = verdict_lines(_summary({"mtl:hps+ew": 0.03, "hgb": -0.01}))
    assert not any(line.startswith("best candidate overall") and "hgb" in line.split("(")[0] for line in lines)


def test_per_task_figure_shows_the_differences_with_the_legend_outside(compare_out: Path) -> None:
    summary = json.loads((compare_out / "comparison.json").read_text())
    # small differences from STL (1-3 %) must fill the panel, not sit on a bar from 0 of the metric
    for name, entry in summary["candidates"].items():
        if "tasks" in entry and name != "stl":
            for task, metrics in entry["tasks"].items():
                for metric, stats in metrics.items():
                    base = summary["candidates"]["stl"]["tasks"][task][metric]["values"]
                    stats["values"] = [b * (1.01 if k % 2 else 1.03) for k, b in enumerate(base)]
    fig = plots.per_task_figure(summary)
    fig.canvas.draw()
    panels = [ax for ax in fig.axes if ax.has_data()]
    assert len(panels) == 3
    for ax in panels:
        lo, hi = ax.get_xlim()
        assert -5.0 < lo <= 0.0 < hi < 6.0, (lo, hi)  # zoomed to differences of 1-3 %, 0 = STL in view
        assert ax.get_xlabel() == "% better than STL"
    (legend,) = fig.legends
    legend_box = legend.get_window_extent()
    assert all(legend_box.x0 >= ax.get_window_extent().x1 for ax in panels)  # right of every panel
    assert [t.get_text() for t in legend.get_texts()] == [n for n in summary["candidates"] if n != "stl"]
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_lower_is_better_differences_point_right_when_better() -> None:
    summary = {"problem": {"headline_metrics": {"y": "rmse"}},
               "candidates": {"stl": {"tasks": {"y": {"rmse": {"mean": 1.0, "values": [1.0, 1.0]}}}},
                              "mtl": {"tasks": {"y": {"rmse": {"mean": 0.9, "values": [0.9, 0.9]}}}}}}
    fig = plots.per_task_figure(summary)
    (bar,) = [p for p in fig.axes[0].patches]
    assert math.isclose(bar.get_width(), 10.0)  # 10 % lower RMSE = 10 % better: to the right of 0
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_markdown_to_html_renders_code_images_and_escapes() -> None:
    page = html.render("t", "# A <b>\n\n```bash\necho '<x>'\n```\n\n![fig one](one.png)\n\ntext `code`",
                       {"fig one": b"\x89PNG", "other": b"\x89PNG"})
    assert "<h1>A &lt;b&gt;</h1>" in page and "<pre><code>echo &#x27;&lt;x&gt;&#x27;</code></pre>" in page
    assert page.count("data:image/png;base64,") == 2 and page.index('alt="fig one"') < page.index("<code>code</code>")
    assert page.index('alt="other"') > page.index("<code>code</code>")  # not placed: at the end


CHECK_PAGE = """JSON.stringify({
  title: document.title,
  height: document.body.scrollHeight,
  h2: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
  tables: document.querySelectorAll('table').length,
  code: (document.querySelector('pre code') || {}).textContent || '',
  images: Array.from(document.images).map(i => ({alt: i.alt, complete: i.complete, w: i.naturalWidth, h: i.naturalHeight}))
})"""


def test_report_renders_in_headless_chromium(compare_out: Path, tmp_path: Path) -> None:
    with browser_page(tmp_path / "profile") as page:
        # the checker sees what it must catch: a console error and an image that does not load
        broken = tmp_path / "broken.html"
        broken.write_text("<!DOCTYPE html><html><body><img alt='x' src='missing.png'>"
                          "<script>console.error('boom')</script></body></html>")
        open_file(page, broken)
        seen = json.loads(page.evaluate(CHECK_PAGE))
        assert seen["images"][0]["w"] == 0 and any("boom" in e for e in page.errors())
        open_file(page, compare_out / "report.html")
        seen = json.loads(page.evaluate(CHECK_PAGE))
        errors = page.errors()
    assert errors == []
    assert seen["title"].startswith("polytask compare: data.csv") and seen["height"] > 1000
    assert seen["h2"] == ["How to read delta-m", "How this report was made"] and seen["tables"] >= 3
    assert seen["code"].startswith("polytask compare ")
    assert [i["alt"] for i in seen["images"]] == ["per task", "delta m"]
    assert all(i["complete"] and i["w"] > 100 and i["h"] > 100 for i in seen["images"])
