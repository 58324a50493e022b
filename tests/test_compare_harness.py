"""The harness reaches the right conclusion on problems whose answer we know.

Related tasks with little data: eight tasks read the same latent factor of the inputs and each
task is labelled on its own eighth of the rows (30 labels per task in training), so the shared
trunk sees eight times the inputs an STL network sees: MTL must come out significantly better.
Unrelated tasks (an independent factor per task, otherwise identical): no significant gain.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from polytask.compare.candidates import build_candidates
from polytask.compare.runner import Problem, RunPlan, compare
from polytask.compare.summary import summarize
from polytask.errors import PolytaskError
from polytask.synthetic import related_tasks
from polytask.training.config import TrainConfig
from polytask.workflow import NetworkSpec


def one_task_per_row(unrelated: bool) -> tuple[pd.DataFrame, list[str]]:
    frame, names = related_tasks(n_rows=1000, n_features=20, n_tasks=8, n_latent=1, noise=0.3, seed=0,
                                 unrelated=unrelated)
    owner = np.arange(len(frame)) % len(names)
    for t, name in enumerate(names):
        frame.loc[owner != t, name] = np.nan
    return frame, names


def run(unrelated: bool) -> dict:  # type: ignore[type-arg]
    frame, names = one_task_per_row(unrelated)
    comparison = compare(
        Problem(frame, names), build_candidates(["hps"], ["ew"], []),
        RunPlan("seeds", 3, val_fraction=0.2, test_fraction=0.55, base_seed=0),
        NetworkSpec(trunk=(16,)), TrainConfig(epochs=40, batch_size=32, lr=3e-3, patience=10),
    )
    return summarize(comparison)


def test_mtl_is_significantly_better_on_related_tasks_with_little_data() -> None:
    s = run(unrelated=False)
    mtl = s["candidates"]["mtl:hps+ew"]
    assert s["problem"]["rows"]["train"] == 250
    assert mtl["delta_m"]["mean"] > 0.05
    assert mtl["delta_m"]["test"]["p_value"] < 0.05
    assert mtl["delta_m"]["verdict"] == "significantly better"
    assert s["verdict"][0].startswith("MTL WINS")
    assert mtl["tasks_worse"] == 0


def test_no_significant_gain_on_unrelated_tasks() -> None:
    s = run(unrelated=True)
    mtl = s["candidates"]["mtl:hps+ew"]
    assert mtl["delta_m"]["verdict"] != "significantly better"
    assert not s["verdict"][0].startswith("MTL WINS")


def test_candidates_from_explicit_pairs_are_not_a_cross_product() -> None:
    pairs = [("hps", "ew"), ("mmoe", "ew"), ("hps", "upgrad")]
    names = [c.name for c in build_candidates((), (), ["linear"], pairs=pairs)]
    assert names == ["stl", "mtl:hps+ew", "mtl:mmoe+ew", "mtl:hps+upgrad", "linear"]
    crossed = [c.name for c in build_candidates(["hps", "mmoe"], ["ew", "upgrad"], [])]
    assert len(crossed) == 5  # stl + 2 x 2
    with pytest.raises(PolytaskError, match="unknown architecture 'nope'"):
        build_candidates((), (), [], pairs=[("nope", "ew")])
