"""The speed benchmark: its quick mode produces well-formed JSON and a report, and its two peers
(the per-task loop and torchjd) compute the same shared update as polytask. No timing is
asserted anywhere (speed belongs in the benchmark's own ratios, not in tests)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from polytask import balancers
from polytask_lab.bench.check import relative_difference, shared_gradient
from polytask_lab.bench.measure import paired_ratio, peak_step_bytes, time_interleaved, time_lockstep
from polytask_lab.bench.peers import PerTaskLoop, TorchjdPeer, sum_rows, torchjd_aggregator
from polytask_lab.bench.problems import QUICK_SIZE, build_network, make_batch, task_list
from polytask_lab.bench.suite import targets_for
from polytask.cli import main
from polytask.training import TrainConfig, Trainer

torchjd_aggregation = pytest.importorskip("torchjd.aggregation")

#: Gradient methods whose torchjd aggregator has the same definition and an exact solution
#: (MGDA and CAGrad are left out because torchjd solves them iteratively or through cvxpy to a
#: solver tolerance, about 1e-5 apart; PCGrad and GradDrop because they draw random numbers).
SAME_AS_TORCHJD = ("upgrad", "dualproj", "imtl_g", "aligned_mtl")


def _trainer(net: str, n_tasks: int, balancer: balancers.Balancer, dtype: torch.dtype = torch.float64) -> tuple[Trainer, object]:
    network = build_network(net, n_tasks, QUICK_SIZE, seed=3).to(dtype)
    batch = make_batch(net, n_tasks, QUICK_SIZE, seed=3)
    batch = type(batch)(batch.x.to(dtype), {k: v.to(dtype) for k, v in batch.targets.items()}, batch.masks)
    trainer = Trainer(network, task_list(n_tasks), config=TrainConfig(optimizer="sgd", lr=1e-3), balancer=balancer)
    return trainer, batch


def _shared(net: str, n_tasks: int, balancer: balancers.Balancer) -> torch.Tensor:
    trainer, batch = _trainer(net, n_tasks, balancer)
    return shared_gradient(trainer, batch)


def _registered_gradient_method() -> str | None:
    return next((n for n in SAME_AS_TORCHJD if n in balancers.names()), None)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path, list[str]]:
    """One quick benchmark run (both networks, T = 3, EW, static and one gradient method when
    one is registered), written as a report; the tests below read it."""
    methods = ["ew", "static"] + ([m] if (m := _registered_gradient_method()) else [])
    out = tmp_path_factory.mktemp("bench") / "perf.md"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["bench", "--quick", "--json", "--nets", "mlp,conv", "--tasks", "3",
                     "--methods", ",".join(methods), "--repeats", "2", "--out", str(out)])
    assert code == 0
    return json.loads(buffer.getvalue()), out, methods


def test_quick_run_gives_well_formed_json_with_ratios(quick_run: tuple[dict, Path, list[str]]) -> None:
    doc, _, methods = quick_run
    assert doc["schema"] == "polytask-bench/1"
    assert doc["machine"]["nproc"] >= 1 and doc["machine"]["torch"] == torch.__version__
    assert {(p["net"], p["n_tasks"]) for p in doc["points"]} == {("mlp", 3), ("conv", 3)}
    for p in doc["points"]:
        labels = {c["label"] for c in p["candidates"]}
        assert {"ew", "ew (control)", "static"} <= labels
        assert p["control_vs_ew"] > 0
        for c in p["candidates"]:
            assert "error" not in c, c
            assert c["time_s"] > 0 and c["time_q1_s"] <= c["time_s"] <= c["time_q3_s"]
            assert c["peak_bytes"] > 0  # a step allocates at least its activations and gradients
    comparisons = {(c["net"], c["method"], c["mode"]): c for c in doc["comparisons"]}
    for net in ("mlp", "conv"):
        assert comparisons[(net, "ew", None)]["vs_ew"] == pytest.approx(1.0)
        static = comparisons[(net, "static", None)]
        assert math.isfinite(static["vs_ew"]) and static["vs_ew"] > 0
        assert [t["target"] for t in static["targets"]] == ["loss weighting <= 1.1x EW"]
        assert static["targets"][0]["met"] == (static["vs_ew"] <= 1.1)
        if len(methods) == 3:
            for mode in balancers.modes(methods[2]):
                g = comparisons[(net, methods[2], mode)]
                assert g["speedup_vs_loop"] > 0 and g["speedup_vs_torchjd"] > 0 and g["memory_vs_loop"] > 0
                assert g["loop_grad_rel_diff"] < 1e-4  # the peers compute the same update (float32)
    counts = doc["target_summary"]["loss weighting <= 1.1x EW"]
    assert counts["met"] + counts["missed"] == 2


def test_quick_run_writes_the_report_and_its_json(quick_run: tuple[dict, Path, list[str]]) -> None:
    doc, out, _ = quick_run
    assert json.loads(out.with_suffix(".json").read_text()) == json.loads(json.dumps(doc))
    text = out.read_text()
    assert "No GPU was available" in text and "## Targets" in text and "| static |" in text
    assert "polytask bench --quick" in text  # the command that reproduces it


def test_report_renders_again_from_saved_json(quick_run: tuple[dict, Path, list[str]], tmp_path: Path) -> None:
    _, out, _ = quick_run
    notes = tmp_path / "notes.md"
    notes.write_text("## Analysis\n\nhand-written words\n")
    again = tmp_path / "again.md"
    assert main(["bench", "--from-json", str(out.with_suffix(".json")), "--out", str(again), "--notes", str(notes), "--quiet"]) == 0
    text = again.read_text()
    assert "hand-written words" in text and "| static |" in text


@pytest.mark.parametrize(
    "args, message",
    [
        (["--nets", "resnet"], "unknown benchmark network 'resnet'"),
        (["--methods", "nope"], "unknown balancer 'nope'"),
        (["--tasks", "1"], "task counts must be >= 2"),
        (["--tasks", "3,x"], "--tasks expects comma-separated integers"),
        (["--modes", "fast"], "unknown gradient mode 'fast'"),
        (["--out", "perf.txt"], "--out must end in .md or .json"),
    ],
)
def test_bad_options_are_one_line_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args = [a if a != "perf.txt" else str(tmp_path / a) for a in args]
    base = ["bench", "--quick", "--nets", "mlp", "--tasks", "2", "--methods", "ew", "--repeats", "1", "--memory", "none", "--quiet"]
    assert main(base + args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err


@pytest.mark.parametrize("net", ["mlp", "conv"])
@pytest.mark.parametrize("mode", ["exact", "representation"])
def test_peers_match_polytask_equal_weighting(net: str, mode: str) -> None:
    """EW's update is the sum of the task gradients, so both peers summing the per-task
    gradients (the loop's rows, torchjd's ``Sum``) must reproduce polytask's ``ew`` exactly."""
    ours = _shared(net, 4, balancers.get("ew"))
    loop = _shared(net, 4, PerTaskLoop(sum_rows, mode))
    tjd = _shared(net, 4, TorchjdPeer(torchjd_aggregation.Sum(), mode))
    assert ours.abs().sum() > 0
    assert relative_difference(loop, ours) < 1e-10
    assert relative_difference(tjd, ours) < 1e-10


@pytest.mark.parametrize("mode", ["exact", "representation"])
def test_peers_agree_with_each_other_on_upgrad(mode: str) -> None:
    """The loop fed torchjd's UPGrad and torchjd's own engine with UPGrad give one update
    (a check of the peers that needs no polytask method)."""
    loop = _shared("mlp", 5, PerTaskLoop(lambda J: torchjd_aggregation.UPGrad()(J), mode))
    tjd = _shared("mlp", 5, TorchjdPeer(torchjd_aggregation.UPGrad(), mode))
    plain_sum = _shared("mlp", 5, PerTaskLoop(sum_rows, mode))
    assert relative_difference(loop, tjd) < 1e-8
    assert relative_difference(loop, plain_sum) > 1e-6  # UPGrad is not a plain sum here: the check has teeth


@pytest.mark.parametrize("method", SAME_AS_TORCHJD)
@pytest.mark.parametrize("net", ["mlp", "conv"])
def test_peers_compute_polytasks_update_for_gradient_methods(method: str, net: str) -> None:
    assert method in balancers.names(), f"gradient method '{method}' is not registered"
    ours_balancer = balancers.get(method, mode="exact")
    ours = _shared(net, 4, ours_balancer)
    probe = balancers.get(method, mode="exact")
    probe.setup(["t0", "t1", "t2", "t3"])
    loop = _shared(net, 4, PerTaskLoop(probe.aggregate, "exact"))  # type: ignore[attr-defined]
    agg, label = torchjd_aggregator(method, 4, probe.options(), probe.aggregate)  # type: ignore[attr-defined]
    assert label.startswith("torchjd.")
    tjd = _shared(net, 4, TorchjdPeer(agg, "exact"))
    assert relative_difference(loop, ours) < 1e-6
    assert relative_difference(tjd, ours) < 1e-5


def test_peak_memory_counts_live_tensor_bytes() -> None:
    """A hand computation: holding two 4 MB tensors at once peaks at 8 MB; allocating them one
    after the other (the first freed) peaks at 4 MB."""
    n = 1_000_000

    def both() -> None:
        a = torch.ones(n)
        b = torch.ones(n)
        del a, b

    def one_after_other() -> None:
        a = torch.ones(n)
        del a
        b = torch.ones(n)
        del b

    memory = peak_step_bytes({"both": both, "sequential": one_after_other})
    peaks = memory.peaks
    assert not memory.errors
    assert 8 * n <= peaks["both"] < 8 * n + 4096
    assert 4 * n <= peaks["sequential"] < 4 * n + 4096


def test_a_failing_step_is_reported_not_fatal() -> None:
    def broken() -> None:
        raise RuntimeError("solver failed")

    memory = peak_step_bytes({"ok": lambda: None, "broken": broken}, profile_memory=False)
    assert memory.errors == {"broken": "RuntimeError: solver failed"} and "ok" in memory.seconds


def test_interleaved_timing_runs_every_candidate_each_round() -> None:
    calls: list[str] = []
    steps = {k: (lambda k=k: calls.append(k)) for k in ("a", "b", "c")}
    timings = time_interleaved(steps, warmup=1, repeats=4, min_sample_s=0.0, seed=1, budget_s=None, max_samples_per_round=1)
    assert set(timings) == {"a", "b", "c"} and all(len(t.samples) == 4 and len(t.rounds) == 4 for t in timings.values())
    rounds = [calls[i : i + 3] for i in range(0, len(calls), 3)]
    assert all(sorted(r) == ["a", "b", "c"] for r in rounds)  # each round runs everyone once
    assert len({tuple(r) for r in rounds}) > 1  # in shuffled orders


def test_lockstep_timing_gives_each_candidate_its_steps_per_round_in_turns() -> None:
    """A candidate takes ceil(round_s / estimate) steps a round; the candidates take turns inside
    a round (with 0-length turns every step hands over), and each round gives one sample each."""
    calls: list[str] = []
    steps = {k: (lambda k=k: calls.append(k)) for k in ("a", "b", "c")}
    timings = time_lockstep(steps, repeats=3, estimates={"a": 0.01, "b": 0.02, "c": 0.2}, round_s=0.04, seed=1,
                            turn_s=0.0, calibrate=False)
    assert {k: calls.count(k) for k in steps} == {"a": 12, "b": 6, "c": 3}  # 4, 2 and 1 steps a round
    assert all(len(t.samples) == 3 and t.rounds == t.samples for t in timings.values())
    first_round = calls[:7]
    assert sorted(first_round) == ["a"] * 4 + ["b"] * 2 + ["c"]  # a round ends before the next begins
    assert first_round[:4] != ["a"] * 4 and first_round[:4] != sorted(first_round[:4])  # interleaved, not one after another


def test_lockstep_timing_stops_at_the_budget_after_the_minimum_rounds() -> None:
    def busy() -> None:
        sum(i * i for i in range(20_000))

    timings = time_lockstep({"a": busy, "b": busy}, repeats=50, estimates={"a": 1e-3, "b": 1e-3}, round_s=1e-3,
                            min_repeats=4, budget_s=0.0, turn_s=0.0)
    assert all(len(t.samples) == 4 for t in timings.values())


def test_lockstep_calibration_sets_the_steps_per_round_from_measured_times() -> None:
    """A first-step estimate 1000 times too long would give one step a round; the untimed
    calibration round measures the real duration, so the timed rounds take many steps."""
    calls: dict[str, int] = {"slow estimate": 0, "right estimate": 0}

    def busy(label: str):  # type: ignore[no-untyped-def]
        def step() -> None:
            calls[label] += 1
            sum(i * i for i in range(5_000))
        return step

    steps = {k: busy(k) for k in calls}
    first = time_lockstep(steps, repeats=1, estimates={"slow estimate": 1.0, "right estimate": 1e-3}, round_s=0.02,
                          calibrate=False)
    assert calls["slow estimate"] == 1 and first["slow estimate"].samples
    calls.update({k: 0 for k in calls})
    time_lockstep(steps, repeats=2, estimates={"slow estimate": 1.0, "right estimate": 1e-3}, round_s=0.02)
    timed = calls["slow estimate"] - 1  # the calibration round took one step
    assert timed >= 2 * 3  # at least 3 steps in each of the 2 timed rounds (not 1)


def test_paired_ratio_is_the_median_of_per_round_ratios() -> None:
    """Hand computation: per-round ratios 3, 2, 1 give 2, where the ratio of the pooled medians
    (3 / 2) would mix rounds measured under different loads."""
    candidate = [3.0, 20.0, 2.0]
    reference = [1.0, 10.0, 2.0]
    assert paired_ratio(candidate, reference) == pytest.approx(2.0)
    assert paired_ratio(candidate, [0.0, 0.0, 0.0]) is None


def test_targets_follow_the_issue() -> None:
    base = {"net": "mlp", "speedup_vs_loop": None, "speedup_vs_torchjd": None, "memory_vs_loop": None}
    famo = targets_for({**base, "n_tasks": 10, "method": "famo", "family": "loss", "mode": None, "vs_ew": 1.2})
    assert [(t["limit"], t["met"]) for t in famo] == [(1.3, True)]
    dwa = targets_for({**base, "n_tasks": 10, "method": "dwa", "family": "loss", "mode": None, "vs_ew": 1.2})
    assert [(t["limit"], t["met"]) for t in dwa] == [(1.1, False)]
    exact = {**base, "method": "upgrad", "family": "gradient", "mode": "exact", "vs_ew": 3.0,
             "speedup_vs_loop": 1.1, "speedup_vs_torchjd": 1.2, "memory_vs_loop": 0.9}
    assert targets_for({**exact, "n_tasks": 3}) == []  # exact targets are set for T = 10 and 30 only
    verdicts = {t["key"]: t["met"] for t in targets_for({**exact, "n_tasks": 30})}
    assert verdicts == {"speedup_vs_loop": True, "speedup_vs_torchjd": False, "memory_vs_loop": True}
    rep = targets_for({**exact, "n_tasks": 3, "mode": "representation", "vs_ew": 1.25})
    assert [(t["key"], t["met"]) for t in rep] == [("vs_ew", True)]


def test_bracketed_rounds_put_the_reference_around_every_candidate() -> None:
    """Each round: the reference, then each other step followed by the reference; a step's
    bracket is the mean of the reference times just before and after it, so a drift of the
    machine's speed that is linear over the round cancels out of every ratio."""
    import random

    from polytask_lab.bench.basic import bracketed_rounds

    clock = iter(range(1, 1000))
    calls: list[str] = []

    def step(label: str, cost: float):  # type: ignore[no-untyped-def]
        def run() -> float:
            calls.append(label)
            return cost * next(clock)  # the machine slows down linearly, call after call
        return run

    steps = {"ref": step("ref", 1.0), "twice": step("twice", 2.0), "same": step("same", 1.0)}
    samples, brackets = bracketed_rounds(steps, "ref", 3, random.Random(0))
    rounds = [calls[i : i + 5] for i in range(0, len(calls), 5)]
    assert len(rounds) == 3 and all(r[0::2] == ["ref"] * 3 and sorted(r[1::2]) == ["same", "twice"] for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # shuffled
    for label, expected in (("twice", 2.0), ("same", 1.0)):
        assert [v / b for v, b in zip(samples[label], brackets[label])] == pytest.approx([expected] * 3)
    assert len(samples["ref"]) == 9 and samples["ref"] == brackets["ref"]


def test_epoch_scaling_times_both_task_counts_each_round_and_sets_the_target() -> None:
    from polytask_lab.bench.basic import BasicSettings, run_scaling, targets

    settings = BasicSettings(rows=(1_000,), task_counts=(2, 6), epochs=((1_000, 1),), rounds=2)
    threads = torch.get_num_threads()
    try:
        scaling = run_scaling(1_000, (2, 6), settings)
    finally:
        torch.set_num_threads(threads)
    assert scaling["task_counts"] == [2, 6] and len(scaling["ratios"]) == 2 and all(r > 0 for r in scaling["ratios"])
    assert scaling["range"][0] <= scaling["median"] <= scaling["range"][1]
    rows = targets([], [scaling], {})
    assert rows == [{"target": "epoch time at T = 6 <= 1.5x T = 2", "where": "rows=1,000", "value": scaling["median"],
                     "limit": 1.5, "op": "<=", "met": scaling["median"] <= 1.5}]


def test_the_benchmark_step_takes_the_trainers_path_for_complete_labels() -> None:
    """With every label observed the trainer's step gets no mask (the packed data keep none);
    the benchmark's step must take that same path, not a mask of ones (it once did, timing a
    path fit never takes)."""
    from polytask_lab.bench import suite

    settings = suite.BenchSettings.quick(methods=("upgrad",), modes=("representation",), peers=False, basic=None)
    network = build_network("mlp", 3, settings.size, seed=0)
    batch = make_batch("mlp", 3, settings.size, seed=0)
    candidates = suite._candidates(suite._method_plan(settings), network, task_list(3), settings)
    trainer = next(c.trainer for c in candidates if c.label == "upgrad[representation]/polytask")
    masks: list[object] = []
    plain = trainer.packed_context

    def recording(x, y, m, epoch):  # type: ignore[no-untyped-def]
        masks.append(m)
        return plain(x, y, m, epoch)

    trainer.packed_context = recording  # type: ignore[method-assign]
    suite._step_fn(trainer, batch)()
    assert masks == [None]
