"""The step-time and peak-memory benchmark: every registered method against equal weighting,
the per-task loop and torchjd, measured side by side in one run.

For each network and task count T the benchmark builds one network and one batch, then one
candidate per (method, mode, implementation):

- ``ew``, the reference every ratio is taken against, plus a second, independent ``ew``
  (the *control*; its ratio to the first shows the noise floor of the run);
- every loss-weighting method (``modes(name) == ()``), as polytask runs it;
- every gradient method in each mode it supports, three ways: polytask's engine
  (``get(name, mode=...)``), the per-task loop with the same method's ``aggregate``, and
  torchjd with its own aggregator for the method (see :mod:`polytask_lab.bench.peers`).

A candidate's step is a training step as the :class:`~polytask.training.Trainer` takes it:
``Trainer.context`` (forward and loss vector), ``zero_grad``, ``balancer.backward(ctx)``,
optimizer step (plain SGD, shared by all candidates, so the optimizer adds no state).

Results are ratios measured in the same run (absolute times are kept in the JSON for context).
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from polytask import balancers
from polytask.balancers import Balancer
from polytask_lab.bench.basic import BasicSettings, run_basic
from polytask_lab.bench.check import relative_difference
from polytask_lab.bench.measure import paired_ratio, peak_step_bytes, time_interleaved, time_lockstep
from polytask_lab.bench.peers import PerTaskLoop, TorchjdPeer, torchjd_aggregator
from polytask_lab.bench.problems import FULL_SIZE, NETS, QUICK_SIZE, ProblemSize, build_network, make_batch, task_list
from polytask.errors import PolytaskError
from polytask.training import TrainConfig, Trainer

SCHEMA = "polytask-bench/1"
MEMORY_CHOICES = ("all", "targets", "none")
IMPLEMENTATIONS = ("polytask", "loop", "torchjd")
CONTROL = "ew (control)"

#: Targets of issue 3 (CPU): (name, ratio key, comparison, limit, which points).
TARGET_TASK_COUNTS = (10, 30)


@dataclass
class BenchSettings:
    """What to measure and how.

    Attributes:
        nets: networks (``mlp``, ``conv``); task_counts: values of T.
        methods: method names (None: every registered method); ``ew`` is always measured.
        modes: gradient modes to measure (None: every mode a method supports).
        size: network and batch sizes.
        warmup: untimed rounds before timing (besides the two warm-up steps of the memory pass);
        repeats: at most this many timed rounds; min_repeats: at least this many, and more only
        while the point's timing stays within point_budget_s seconds; round_s: CPU seconds of
        steps each candidate takes per lockstep round (CPU); min_sample_s: shortest sample of
        interleaved timing (GPU).
        memory: peak memory of ``all`` candidates, of those a target judges by memory
            (``targets``: EW and exact-mode gradient candidates at T = 10 and 30) or ``none``.
        peers: measure the loop and torchjd peers.
        seed, device: seeding and device.
    """

    nets: tuple[str, ...] = NETS
    task_counts: tuple[int, ...] = (3, 10, 30)
    methods: tuple[str, ...] | None = None
    modes: tuple[str, ...] | None = None
    size: ProblemSize = FULL_SIZE
    warmup: int = 0
    repeats: int = 15
    min_repeats: int = 7
    point_budget_s: float | None = 40.0
    round_s: float = 0.2
    min_sample_s: float = 0.02
    memory: str = "targets"
    peers: bool = True
    seed: int = 0
    device: str = "cpu"
    preset: str = "full"
    basic: BasicSettings | None = field(default_factory=BasicSettings)

    @classmethod
    def quick(cls, **changes: Any) -> "BenchSettings":
        """A tiny configuration (T = 3, tiny networks) for smoke tests, not for figures: seconds
        for a few methods, about a minute for every registered one on a loaded 2-core machine."""
        base = dict(task_counts=(3,), size=QUICK_SIZE, repeats=3, point_budget_s=None, round_s=0.01, min_sample_s=0.002, memory="all",
                    preset="quick", basic=BasicSettings.quick())
        base.update(changes)
        return cls(**base)

    def validate(self) -> None:
        bad_net = [n for n in self.nets if n not in NETS]
        if bad_net:
            raise PolytaskError(f"unknown benchmark network '{bad_net[0]}' (choose from {', '.join(NETS)})")
        if not self.nets or not self.task_counts:
            raise PolytaskError("the benchmark needs at least one network and one task count")
        if any(t < 2 for t in self.task_counts):
            raise PolytaskError("task counts must be >= 2 (a single task has nothing to balance)")
        known = balancers.names()
        for m in self.methods or ():
            if m not in known:
                raise PolytaskError(f"unknown balancer '{m}' (choose from {', '.join(known)})")
        for mode in self.modes or ():
            if mode not in ("exact", "representation"):
                raise PolytaskError(f"unknown gradient mode '{mode}' (choose from exact, representation)")
        if self.memory not in MEMORY_CHOICES:
            raise PolytaskError(f"unknown memory setting '{self.memory}' (choose from {', '.join(MEMORY_CHOICES)})")
        if self.repeats < 1:
            raise PolytaskError(f"repeats must be >= 1, got {self.repeats}")
        if self.warmup < 0:
            raise PolytaskError(f"warmup must be >= 0, got {self.warmup}")


@dataclass
class Candidate:
    """One thing to time: a method, in a mode, by one implementation."""

    method: str
    family: str  # "reference", "loss", "gradient"
    mode: str | None
    implementation: str
    label: str
    aggregator: str | None = None
    trainer: Trainer | None = None
    error: str | None = None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """The machine the figures come from."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        torchjd_version = version("torchjd")
    except Exception:  # noqa: BLE001 - torchjd is optional
        torchjd_version = None
    info: dict[str, Any] = {
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "torchjd": torchjd_version,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device,
        "cuda_available": torch.cuda.is_available(),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def git_revision(where: str | None = None) -> str | None:
    """The commit of the source tree the benchmark runs from (None outside a git checkout),
    marked when files other than the documents (``docs/``, which the sections write) differ."""
    import subprocess

    here = where or os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", here, "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    changed = [line for line in dirty.stdout.splitlines() if line.strip() and not line[3:].startswith("docs/")]
    return out.stdout.strip() + (" (with uncommitted changes)" if changed else "")


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _method_plan(settings: BenchSettings) -> list[tuple[str, str, tuple[str, ...]]]:
    """(name, family, modes to measure) for every method, ``ew`` first."""
    wanted = settings.methods if settings.methods is not None else tuple(balancers.names())
    plan: list[tuple[str, str, tuple[str, ...]]] = [("ew", "reference", ())]
    for name in wanted:
        if name == "ew":
            continue
        modes = balancers.modes(name)
        if not modes:
            plan.append((name, "loss", ()))
        else:
            chosen = tuple(m for m in modes if settings.modes is None or m in settings.modes)
            if chosen:
                plan.append((name, "gradient", chosen))
    return plan


def _trainer(network: torch.nn.Module, tasks: list, balancer: Balancer, device: str) -> Trainer:
    config = TrainConfig(optimizer="sgd", lr=1e-4, momentum=0.0, device=device)
    return Trainer(network, tasks, config=config, balancer=balancer)  # type: ignore[arg-type]


def _candidates(plan: list[tuple[str, str, tuple[str, ...]]], network: torch.nn.Module, tasks: list,
                settings: BenchSettings) -> list[Candidate]:
    out: list[Candidate] = []
    n_tasks = len(tasks)
    for label, impl in (("ew", "polytask"), (CONTROL, "polytask")):
        c = Candidate("ew", "reference", None, impl, label)
        c.trainer = _trainer(network, tasks, balancers.get("ew"), settings.device)
        out.append(c)
    for name, family, modes in plan:
        if family == "reference":
            continue
        if family == "loss":
            c = Candidate(name, "loss", None, "polytask", name)
            try:
                c.trainer = _trainer(network, tasks, balancers.get(name), settings.device)
            except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                c.error = f"{type(exc).__name__}: {exc}"
            out.append(c)
            continue
        for mode in modes:
            impls = IMPLEMENTATIONS if settings.peers else ("polytask",)
            for impl in impls:
                c = Candidate(name, "gradient", mode, impl, f"{name}[{mode}]/{impl}")
                try:
                    ours = balancers.get(name, mode=mode)
                    if impl == "polytask":
                        balancer: Balancer = ours
                        c.aggregator = "polytask"
                    elif impl == "loop":
                        ours.setup([t.name for t in tasks])
                        balancer = PerTaskLoop(ours.aggregate, mode)  # type: ignore[attr-defined]
                        c.aggregator = "polytask aggregate"
                    else:
                        ours.setup([t.name for t in tasks])
                        agg, agg_label = torchjd_aggregator(name, n_tasks, ours.options(), ours.aggregate)  # type: ignore[attr-defined]
                        balancer = TorchjdPeer(agg, mode)
                        c.aggregator = agg_label
                    c.trainer = _trainer(network, tasks, balancer, settings.device)
                except Exception as exc:  # noqa: BLE001 - recorded, the run goes on
                    c.error = f"{type(exc).__name__}: {exc}"
                out.append(c)
    return out


def _step_fn(trainer: Trainer, batch: Any) -> Callable[[], None]:
    packed = trainer.pack(batch)  # as the trainer packs its data once per run

    def step() -> None:
        ctx, _ = trainer.packed_context(packed.x, packed.y, packed.mask, 0)  # None when every label is observed, as in fit
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.balancer.backward(ctx)
        trainer.optimizer.step()
        trainer.step += 1

    return step


def _paired(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    if "round_medians_s" not in a or "round_medians_s" not in b:
        return None
    return paired_ratio(a["round_medians_s"], b["round_medians_s"])


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def run_point(net: str, n_tasks: int, settings: BenchSettings, plan: list[tuple[str, str, tuple[str, ...]]],
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every candidate at one (network, T) point; returns the point's JSON."""
    device = torch.device(settings.device)
    tasks = task_list(n_tasks)
    network = build_network(net, n_tasks, settings.size, seed=settings.seed)
    batch = make_batch(net, n_tasks, settings.size, seed=settings.seed).to(device)
    candidates = _candidates(plan, network, tasks, settings)
    steps = {c.label: _step_fn(c.trainer, batch) for c in candidates if c.error is None and c.trainer is not None}
    # The first step of every candidate: from the same weights and fresh method state, under the
    # memory profiler. It checks that the method runs, warms it up for timing, gives its peak
    # memory, and (gradient methods) the shared gradient it applies, for the agreement check.
    snapshot = [p.detach().clone() for p in network.parameters()]

    def restore() -> None:
        with torch.no_grad():
            for p, saved in zip(network.parameters(), snapshot):
                p.copy_(saved)

    def before_for(trainer: Trainer) -> Callable[[], None]:
        def before() -> None:
            restore()
            trainer.optimizer.zero_grad(set_to_none=True)
        return before

    grads: dict[str, torch.Tensor] = {}

    def after_for(label: str) -> Callable[[], None]:
        def after() -> None:  # SGD leaves .grad as the balancer filled it
            shared = network.shared_parameters()
            grads[label] = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in shared]).clone()
        return after

    live = [c for c in candidates if c.label in steps and c.trainer is not None]
    if progress:
        progress(f"{net} T={n_tasks}: first step of {len(steps)} candidates (peak memory: {settings.memory})")
    if settings.memory == "targets":
        profiled = {c.label for c in live if c.method == "ew" or (c.mode == "exact" and n_tasks in TARGET_TASK_COUNTS)}
    else:
        profiled = None
    first = peak_step_bytes(steps, {c.label: before_for(c.trainer) for c in live}, device, runs=1,  # type: ignore[arg-type]
                            profile_memory=settings.memory != "none", profiled=profiled,
                            after={c.label: after_for(c.label) for c in live if c.family == "gradient"})
    restore()
    peaks = first.peaks
    for c in candidates:
        if c.label in first.errors:
            c.error = first.errors[c.label]
            steps.pop(c.label, None)
    agreement: dict[str, float] = {}
    for c in candidates:
        ours = f"{c.method}[{c.mode}]/polytask"
        if c.implementation != "polytask" and c.label in grads and ours in grads:
            agreement[c.label] = relative_difference(grads[c.label], grads[ours])
    if progress:
        progress(f"{net} T={n_tasks}: timing {len(steps)} candidates")
    if device.type == "cpu":
        timings = time_lockstep(steps, settings.repeats, first.seconds, settings.round_s, seed=settings.seed,
                                warmup=settings.warmup, min_repeats=min(settings.min_repeats, settings.repeats),
                                budget_s=settings.point_budget_s)
    else:  # a GPU's time is wall time, which threads taking turns cannot split
        timings = time_interleaved(steps, settings.warmup, settings.repeats, settings.min_sample_s, seed=settings.seed,
                                   device=device, min_repeats=min(settings.min_repeats, settings.repeats),
                                   budget_s=settings.point_budget_s, estimates=first.seconds)
    n_shared = sum(p.numel() for p in network.shared_parameters())
    rows = []
    ew_time = timings["ew"].median if "ew" in timings else None
    for c in candidates:
        row: dict[str, Any] = {
            "method": c.method, "family": c.family, "mode": c.mode, "implementation": c.implementation,
            "label": c.label, "aggregator": c.aggregator,
        }
        if c.label in timings:
            t = timings[c.label]
            row.update(time_s=t.median, time_q1_s=t.q1, time_q3_s=t.q3, time_samples=len(t.samples),
                       round_medians_s=list(t.rounds),
                       vs_ew=paired_ratio(t.rounds, timings["ew"].rounds) if "ew" in timings else None)
            if c.label in peaks:
                row["peak_bytes"] = peaks[c.label]
        else:
            row["error"] = c.error or "not measured"
        if c.label in agreement:
            row["shared_grad_rel_diff"] = agreement[c.label]
        rows.append(row)
    return {
        "net": net, "n_tasks": n_tasks, "description": settings.size.describe(net),
        "shared_parameters": n_shared, "total_parameters": sum(p.numel() for p in network.parameters()),
        "ew_time_s": ew_time, "control_vs_ew": paired_ratio(timings[CONTROL].rounds, timings["ew"].rounds) if CONTROL in timings and "ew" in timings else None,
        "candidates": rows,
    }


def compare(point: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (method, mode) at one point: ratios of ours against ew, the loop and torchjd, and
    the targets they are judged by."""
    by_key: dict[tuple[str, str | None], dict[str, dict[str, Any]]] = {}
    for row in point["candidates"]:
        if row["label"] == CONTROL:
            continue
        by_key.setdefault((row["method"], row["mode"]), {})[row["implementation"]] = row
    out = []
    for (method, mode), impls in by_key.items():
        ours = impls.get("polytask", {})
        loop = impls.get("loop", {})
        tjd = impls.get("torchjd", {})
        family = ours.get("family") or loop.get("family") or "gradient"
        entry: dict[str, Any] = {
            "net": point["net"], "n_tasks": point["n_tasks"], "method": method, "family": family, "mode": mode,
            "vs_ew": ours.get("vs_ew"),
            "speedup_vs_loop": _paired(loop, ours),
            "speedup_vs_torchjd": _paired(tjd, ours),
            "memory_vs_loop": _ratio(ours.get("peak_bytes"), loop.get("peak_bytes")),
            "memory_vs_torchjd": _ratio(ours.get("peak_bytes"), tjd.get("peak_bytes")),
            "loop_vs_ew": loop.get("vs_ew"), "torchjd_vs_ew": tjd.get("vs_ew"),
            "torchjd_aggregator": tjd.get("aggregator"),
            "loop_grad_rel_diff": loop.get("shared_grad_rel_diff"),
            "torchjd_grad_rel_diff": tjd.get("shared_grad_rel_diff"),
            "errors": {k: v["error"] for k, v in impls.items() if "error" in v},
        }
        entry["targets"] = targets_for(entry)
        out.append(entry)
    return out


def targets_for(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's CPU targets that apply to one comparison, each with its value and verdict."""
    checks: list[tuple[str, str, str, float]] = []
    if entry["family"] == "loss":
        limit = 1.3 if entry["method"] == "famo" else 1.1
        checks.append((f"loss weighting <= {limit}x EW", "vs_ew", "<=", limit))
    elif entry["family"] == "gradient" and entry["mode"] == "representation":
        checks.append(("representation mode <= 1.3x EW", "vs_ew", "<=", 1.3))
    elif entry["family"] == "gradient" and entry["mode"] == "exact" and entry["n_tasks"] in TARGET_TASK_COUNTS:
        checks.append(("exact: at least as fast as the loop", "speedup_vs_loop", ">=", 1.0))
        checks.append(("exact: >= 1.3x faster than torchjd", "speedup_vs_torchjd", ">=", 1.3))
        checks.append(("exact: peak memory <= the loop's", "memory_vs_loop", "<=", 1.0))
    out = []
    for name, key, op, limit in checks:
        value = entry.get(key)
        met = None if value is None else (value <= limit if op == "<=" else value >= limit)
        out.append({"target": name, "key": key, "op": op, "limit": limit, "value": value, "met": met})
    return out


def run_benchmark(settings: BenchSettings, progress: Callable[[str], None] | None = None,
                  command: str | None = None) -> dict[str, Any]:
    """Run every point; returns the benchmark's JSON document."""
    settings.validate()
    torch.manual_seed(settings.seed)
    plan = _method_plan(settings)
    started = _dt.datetime.now(_dt.timezone.utc)
    load_start = _loadavg()
    points = [run_point(net, t, settings, plan, progress) for net in settings.nets for t in settings.task_counts]
    basic = run_basic(settings.basic, progress) if settings.basic is not None else None
    comparisons = [c for p in points for c in compare(p)]
    verdicts = [t for c in comparisons for t in c["targets"]]
    summary: dict[str, dict[str, int]] = {}
    for v in verdicts:
        s = summary.setdefault(v["target"], {"met": 0, "missed": 0, "not_measured": 0})
        s["met" if v["met"] else ("missed" if v["met"] is False else "not_measured")] += 1
    machine = machine_info(settings.device)
    machine.update(loadavg_start=load_start, loadavg_end=_loadavg(), source_revision=git_revision())
    settings_json = asdict(settings)
    settings_json["size"] = asdict(settings.size)
    settings_json.pop("basic", None)  # recorded with its section
    settings_json["timing"] = "lockstep" if torch.device(settings.device).type == "cpu" else "interleaved"
    return {
        "schema": SCHEMA,
        "started_utc": started.isoformat(timespec="seconds"),
        "seconds": (_dt.datetime.now(_dt.timezone.utc) - started).total_seconds(),
        "command": command,
        "machine": machine,
        "settings": settings_json,
        "methods": [{"name": n, "family": f, "modes": list(m)} for n, f, m in plan],
        "points": points,
        "comparisons": comparisons,
        "target_summary": summary,
        "basic": basic,
    }
