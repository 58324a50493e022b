"""`polytask demo`: MTL and STL side by side on the built-in related tasks."""

from __future__ import annotations

import json

from polytask.cli import main
from polytask.evaluate import delta_m


def test_demo_reports_mtl_and_stl_and_mtl_helps_on_related_tasks(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    mtl, stl = report["mtl"]["test"], report["stl"]["test"]
    assert set(mtl) == set(stl) == {f"task{i}" for i in range(8)}
    assert report["rows"] == {"train": 100, "val": 200, "test": 2000}
    # the demo's point: on related tasks with little data the shared representation helps
    assert delta_m(mtl, stl) > 0


def test_demo_prints_a_side_by_side_table(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["demo", "--epochs", "3"]) == 0
    err = capsys.readouterr().err
    assert "MTL - STL" in err and "delta-m of MTL against STL" in err and "task7" in err
