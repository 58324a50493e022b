"""Every experiment runs in quick mode through the CLI and writes its JSON and PNG."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polytask.cli import main
from polytask_lab.experiments import horizons, inputs_as_outputs
from polytask_lab.experiments.codes import CODES
from polytask_lab.experiments.common import paired_test
from polytask_lab.experiments.registry import EXPERIMENTS

EXPECTED_ARMS = {
    "peaks": {"MTL 64 tanh", "MTL 64 ReLU", "MTL 256 ReLU", "STL 64 ReLU"},
    "peaks-sharing": {f"{line}, {k} common" for line in ("any feature", "test must match") for k in (1, 2, 3)}
    | {"any feature, 0 common"},
    "inputs-as-outputs": {inputs_as_outputs.arm_name(p, c, a) for p in inputs_as_outputs.PROTOCOLS for c in CODES
                          for a in inputs_as_outputs.ARMS},
    "horizons": {horizons.arm_name(s, c, a, h) for s in horizons.SERIES for c in horizons.CONDITIONS
                 for a in ("MTL", "STL") for h in horizons.HORIZONS},
    "grouping": {"combined", "tag", "cosine", "sharing", "sharing_ablation", "combined+tag"},
    "parity": {"MTL", "STL"},
    "amplification": {"STL", "MTL", "MTL, aux shuffled"},
    "attribute-selection": {"STL", "MTL", "MTL, aux shuffled"},
    "eavesdropping": {"STL", "MTL", "MTL, aux shuffled"},
    "representation-bias": {"STL", "MTL", "MTL, aux shuffled"},
    "transfer": {"scratch", "frozen trunk", "fine-tune x0.1"},
}


def test_registry_lists_every_experiment() -> None:
    assert set(EXPERIMENTS) == set(EXPECTED_ARMS)


@pytest.mark.parametrize("name", list(EXPECTED_ARMS))
def test_quick_run_writes_artefacts(name: str, tmp_path: Path) -> None:
    assert main(["experiment", name, "--quick", "--out", str(tmp_path), "-q"]) == 0
    record = json.loads((tmp_path / f"{name}.json").read_text())
    if name == "peaks-sharing":  # the quick run's 24 tasks do not have every kind of pair
        assert {"any feature, 1 common", "any feature, 2 common"} <= set(record["scores"]) <= EXPECTED_ARMS[name]
    else:
        assert set(record["scores"]) == EXPECTED_ARMS[name]
    trials = record["protocol"]["trials"]
    assert all(len(v) == trials for v in record["scores"].values())
    assert all(v is not None and (v >= 0 or record["lower_is_better"] is False) for vs in record["scores"].values()
               for v in vs)
    assert record["paired_tests"] and record["protocol"]["doc"]
    png = (tmp_path / f"{name}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 2000
    table = (tmp_path / f"{name}.md").read_text()
    for arm in record["scores"]:
        assert f"| {arm} | " in table  # one row per arm
    assert table.count(" vs ") >= len(record["paired_tests"]) + 1  # + the header "a vs b"
    assert all("holm_p" in t and "family" in t for t in record["paired_tests"])


def test_same_seed_same_scores(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        assert main(["experiment", "eavesdropping", "--quick", "--trials", "1", "--out", str(tmp_path / sub), "-q"]) == 0
    a, b = (json.loads((tmp_path / s / "eavesdropping.json").read_text())["scores"] for s in ("a", "b"))
    assert a == b


def test_paired_test_against_scipy() -> None:
    from scipy import stats

    a, b = [1.0, 2.0, 3.5, 4.0, 5.5], [1.5, 2.2, 3.0, 4.9, 6.0]
    out = paired_test(a, b)
    assert out["t_p"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert out["mean_diff"] == pytest.approx(sum(x - y for x, y in zip(a, b)) / 5)
    assert out["wins"] == 4  # a lower in 4 of 5 trials


def test_unknown_experiment_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "nope"]) == 2
    assert "unknown experiment 'nope'" in capsys.readouterr().err


def _toy_run(seed: int, values: dict[str, list[float]]) -> dict:  # type: ignore[type-arg]
    from polytask_lab.experiments.common import ExperimentResult

    result = ExperimentResult(name="toy", metric="rmse", lower_is_better=True, protocol={"trials": 2, "seed": seed},
                              comparisons=[("B", "A", "B vs A")], extra={"paper": {}})
    for arm, v in values.items():
        for x in v:
            result.add(arm, x)
    result.seconds, result.cpu_seconds = 2.0, 1.0
    return json.loads(json.dumps(result.to_dict()))


def test_merged_runs_are_the_runs_side_by_side() -> None:
    from scipy import stats

    from polytask_lab.experiments.common import merge_runs

    one = _toy_run(0, {"A": [1.0, 2.0], "B": [0.5, 1.9]})
    two = _toy_run(1, {"A": [3.0, 1.5], "B": [2.0, 1.2]})
    merged = merge_runs([one, two])
    assert merged["scores"] == {"A": [1.0, 2.0, 3.0, 1.5], "B": [0.5, 1.9, 2.0, 1.2]}
    assert merged["protocol"]["trials"] == 4 and merged["protocol"]["seeds"] == [0, 1]
    assert merged["seconds"] == 4.0 and merged["cpu_seconds"] == 2.0
    (test,) = merged["paired_tests"]
    assert test["n"] == 4 and test["t_p"] == pytest.approx(stats.ttest_rel([0.5, 1.9, 2.0, 1.2], [1.0, 2.0, 3.0, 1.5]).pvalue)


def test_a_merged_record_takes_more_runs_later() -> None:
    from polytask_lab.experiments.common import merge_runs

    one = _toy_run(0, {"A": [1.0, 2.0], "B": [0.5, 1.9]})
    two = _toy_run(1, {"A": [3.0, 1.5], "B": [2.0, 1.2]})
    three = _toy_run(2, {"A": [2.5], "B": [2.4]})
    three["protocol"]["trials"] = 1
    later = merge_runs([merge_runs([one, two]), three])
    assert later["scores"] == merge_runs([one, two, three])["scores"]
    assert later["protocol"]["seeds"] == [0, 1, 2] and later["protocol"]["trials_per_seed"] == [2, 2, 1]
    assert later["protocol"]["trials"] == 5 and later["paired_tests"][0]["n"] == 5
    with pytest.raises(ValueError, match="repeat a base seed"):
        merge_runs([merge_runs([one, two]), two])


def test_runs_that_differ_beyond_the_seed_are_not_merged() -> None:
    from polytask_lab.experiments.common import merge_runs

    one = _toy_run(0, {"A": [1.0, 2.0], "B": [0.5, 1.9]})
    with pytest.raises(ValueError, match="repeat a base seed"):
        merge_runs([one, one])
    other = _toy_run(1, {"A": [3.0, 1.5], "B": [2.0, 1.2]})
    other["protocol"]["epochs"] = 5
    with pytest.raises(ValueError, match="differ in more than their seed"):
        merge_runs([one, other])
